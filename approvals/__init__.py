"""breakglass approvals."""
