"""Set-up helpers used by the Makefile (no third-party imports)."""
