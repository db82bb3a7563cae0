"""Adapters that look at the targets a record points to (is the new address actually up?)."""
