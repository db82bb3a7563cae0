"""breakglass service."""
