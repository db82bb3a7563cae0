"""breakglass bot."""
