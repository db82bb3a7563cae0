"""Runs one change request end to end, through ports only (no Slack, Vault or SQL here)."""
