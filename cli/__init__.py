"""breakglass cli."""
