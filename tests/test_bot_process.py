"""sandbox/bot_process.py: a `breakglass serve` that cannot start says why, at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.bot_process import BotProcess


def test_a_bot_that_exits_at_start_fails_loudly_with_its_stderr(tmp_path: Path) -> None:
    bot = BotProcess(
        tmp_path / "missing.toml", bot_token="xoxb-test", signing_secret="s" * 32,
        slack_api_url="http://127.0.0.1:9/api/", log_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="exited with code 2") as failed, bot:
        pass
    assert "does not exist" in str(failed.value)  # the tail of its stderr, so the cause is in the test report
    assert not bot.running
