"""Analysis of a stored run: step table, attribution, verdicts, what-if simulation."""
