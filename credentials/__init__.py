"""breakglass credentials."""
