"""breakglass store."""
