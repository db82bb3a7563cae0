"""breakglass migrations."""
