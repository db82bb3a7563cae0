"""The command-line front door: serving the bot, the database, the demo, out-of-band work."""
