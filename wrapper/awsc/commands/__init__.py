"""The `awsc` commands, one module per subject (awsc.cli only puts them together)."""
