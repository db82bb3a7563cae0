"""The Slack front door: slash command, buttons and Block Kit rendering over the service."""
