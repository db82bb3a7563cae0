"""breakglass providers."""
