"""Where a request's message lives in Slack, stored by the service as an opaque string."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str

    def encode(self) -> str:
        return f"slack:{self.channel}:{self.ts}"

    @classmethod
    def decode(cls, anchor: str | None) -> MessageRef | None:
        if not anchor or not anchor.startswith("slack:"):
            return None
        _, channel, ts = anchor.split(":", 2)
        return cls(channel, ts)
