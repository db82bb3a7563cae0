"""The bot's log stream: one JSON document per line, whoever writes it and from however many threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

THREADS = 8
LINES = 1000

# Our events and a library's (waitress warns "Task queue depth is N" under load) from many threads at
# once, into the process's real stderr, as `breakglass serve` writes them.
WRITER = f"""
import logging, threading, structlog
from config.logs import configure_logging
configure_logging()
ours, library = structlog.get_logger("breakglass.test"), logging.getLogger("waitress.queue")
start = threading.Barrier({THREADS})
def write(n):
    start.wait()
    for i in range({LINES}):
        if (n + i) % 2:
            ours.info("slack.delivery", thread=n, line=i)
        else:
            library.warning("Task queue depth is %d", i)
threads = [threading.Thread(target=write, args=(n,)) for n in range({THREADS})]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_concurrent_structlog_and_library_lines_never_share_a_line(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as out:
        subprocess.run([sys.executable, "-c", WRITER], stderr=out, check=True, timeout=60)
    lines = stderr.read_text().splitlines()
    assert len(lines) == THREADS * LINES
    parsed = [json.loads(line) for line in lines]  # raises on two documents run together
    assert sum(p["event"] == "slack.delivery" for p in parsed) == THREADS * LINES // 2
