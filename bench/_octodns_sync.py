"""Run one octoDNS sync and print how long it took, as JSON (the bulk-failover baseline).

Run in a process of its own (``python -m bench._octodns_sync CONFIG ZONE``) so that octoDNS's
imports and botocore's endpoint variable stay out of the benchmark's process. The clock covers
``Manager(config)`` (provider set-up) and ``sync(dry_run=False, force=True)``: reading the YAML
source, reading the target zone, planning and applying. octoDNS returns as soon as the
provider accepted the change; it does not check that any name server serves it.
"""

from __future__ import annotations

import json
import logging
import sys
import time


def main() -> None:
    config, zone = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.WARNING)
    from octodns.manager import Manager

    started = time.perf_counter()
    manager = Manager(config)
    ready = time.perf_counter()
    changes = manager.sync(eligible_zones=[zone], dry_run=False, force=True)
    done = time.perf_counter()
    print(json.dumps({"seconds": done - started, "setup_seconds": ready - started, "changes": changes}))


if __name__ == "__main__":
    main()
