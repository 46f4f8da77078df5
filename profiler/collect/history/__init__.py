"""Import a queue runner's past metrics from Prometheus into a run (``collect history``)."""
