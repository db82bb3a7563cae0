"""The polling logic of verification, on a scripted clock (the real servers are in test_end_to_end)."""

from core.models import RRsetChange
from core.records import RecordType, RRset
from core.verification import AnswerStatus, ServerAddress, ServerAnswer
from service.propagation import PropagationChecker

NEW = RRset.build("api.example.test", RecordType.A, 60, ["203.0.113.10"])
OLD = RRset.build("api.example.test", RecordType.A, 60, ["192.0.2.10"])
FAST, SLOW = ServerAddress("127.0.0.1", 1), ServerAddress("127.0.0.1", 2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedServers:
    """FAST serves NEW at once; SLOW only after ``slow_after`` seconds (or never)."""

    def __init__(self, clock: Clock, slow_after: float | None) -> None:
        self.clock, self.slow_after, self.queries = clock, slow_after, 0

    def query(self, server: ServerAddress, name: str, rtype: RecordType) -> ServerAnswer:
        self.queries += 1
        ready = server == FAST or (self.slow_after is not None and self.clock.now >= self.slow_after)
        return ServerAnswer(server, name, rtype, AnswerStatus.ANSWER, NEW if ready else OLD)


def _check(slow_after: float | None, timeout: float = 10.0) -> tuple[ScriptedServers, object]:
    clock = Clock()
    servers = ScriptedServers(clock, slow_after)
    checker = PropagationChecker(servers, sleep=clock.sleep, monotonic=lambda: clock.now)
    change = RRsetChange(NEW.name, RecordType.A, OLD, NEW)
    return servers, checker.wait([change], [FAST, SLOW], timeout)


def test_times_each_server_and_stops_once_all_serve() -> None:
    servers, report = _check(slow_after=1.5)
    assert report.verified  # type: ignore[attr-defined]
    fast, slow = report.results  # type: ignore[attr-defined]
    assert fast.seconds_to_serve == 0.0
    assert 1.5 <= slow.seconds_to_serve < 1.76  # backoff caps the overshoot at 0.25 s
    assert servers.queries < 20  # a served server is not asked again


def test_lagging_server_is_named_after_timeout() -> None:
    _, report = _check(slow_after=None, timeout=3.0)
    assert not report.verified  # type: ignore[attr-defined]
    (lagging,) = report.lagging()  # type: ignore[attr-defined]
    assert lagging.server == SLOW
    assert lagging.last_answer.rrset == OLD
    assert 3.0 <= report.elapsed_seconds < 3.1  # type: ignore[attr-defined]


def test_error_answers_never_count_as_served() -> None:
    class Refusing:
        def query(self, server: ServerAddress, name: str, rtype: RecordType) -> ServerAnswer:
            return ServerAnswer(server, name, rtype, AnswerStatus.ERROR, None, "REFUSED")

    clock = Clock()
    checker = PropagationChecker(Refusing(), sleep=clock.sleep, monotonic=lambda: clock.now)
    report = checker.wait([RRsetChange(NEW.name, RecordType.A, NEW, None)], [FAST], 1.0)
    assert not report.verified  # deleting expects NODATA, not an error
