"""Auditing a binary cache: what it stores, how it was compressed, what another codec would cost."""
