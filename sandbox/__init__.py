"""breakglass sandbox."""
