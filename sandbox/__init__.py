"""Local stand-in servers on 127.0.0.1 (OpenBao, BIND, a Slack Web API recorder).

Used by `breakglass demo` and by the test suite; never by the bot in production.
"""
