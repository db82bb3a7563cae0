"""A bare Bolt app that only acks, behind the adapter breakglass uses (Bolt's WSGI handler on waitress).

The memory benchmark's baseline: what any Bolt app served this way holds, before any work of
its own. Listens on 127.0.0.1 only.

    python -m bench.bare_bolt_server --port PORT
    (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN and SLACK_API_URL come from the environment)
"""

from __future__ import annotations

import argparse
import os
import re

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress import serve


def build() -> App:
    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        process_before_response=True,
        token_verification_enabled=False,
    )

    def ack_only(ack: Ack) -> None:
        ack()

    app.command("/dns")(ack_only)
    app.action(re.compile(".*"))(ack_only)  # every button
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(SlackRequestHandler(build(), path="/slack/events"), host="127.0.0.1", port=args.port, threads=8)


if __name__ == "__main__":
    main()
