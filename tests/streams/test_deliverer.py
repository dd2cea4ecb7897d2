"""Delivery bookkeeping and signing (pure parts of the deliverer)."""

import asyncio
import hashlib
import hmac
import random
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from config.settings import Settings
from streams.deliverer import Deliverer, _Status, backoff_seconds, sign
from view.keys import alerts_key


def test_finding_11_signature_covers_a_timestamp_with_the_body() -> None:
    body = b'{"alert_id":"acme:2026-11-01:80"}'
    expected = hmac.new(b"s3cret", b"1795000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", body, 1795000000) == f"t=1795000000,v1={expected}"
    assert sign("other", body, 1795000000) != sign("s3cret", body, 1795000000)
    # The same body at another time has another signature: an old one cannot be replayed.
    assert sign("s3cret", body, 1795000001) != sign("s3cret", body, 1795000000)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (30, 300.0)]:
        delays = [backoff_seconds(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not constant


def test_a_recorded_status_resumes_with_its_deadline_and_history() -> None:
    status = _Status("acme:2026-11-01:80", "acme", "main", "http://h/x")
    status.first_attempt_ms = 1_795_000_000_000
    status.last_attempt_ms = 1_795_000_004_000
    status.attempts, status.last_status = 3, 503
    status.history = [{"at": "2026-11-18T11:06:40Z", "status": 503, "error": None}]
    resumed = _Status.from_wire(status.to_wire())
    assert resumed.first_attempt_ms == status.first_attempt_ms
    assert resumed.last_attempt_ms == status.last_attempt_ms
    assert (resumed.attempts, resumed.state, resumed.last_status) == (3, "pending", 503)
    assert resumed.history == status.history
    assert not resumed.final


class _FlakyView:
    """A view writer that refuses its first ``failures`` writes, then keeps documents."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.docs: dict[tuple[str, str], bytes] = {}

    async def write(
        self, days: object, progress: object = None, metrics: object = None, docs: object = ()
    ) -> bool:
        if self.failures:
            self.failures -= 1
            return False
        for name, field, body in docs:  # type: ignore[attr-defined]
            self.docs[(name, field)] = body
        return True


async def test_an_alert_without_endpoints_reaches_the_view_once_redis_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The processor's own write of the document is lost if the worker dies between its state
    # commit and the view write; the alert topic is then the only place the alert is.
    monkeypatch.setattr("streams.deliverer.backoff_seconds", lambda attempt, rng: 0)
    view = _FlakyView(failures=2)
    accounts = SimpleNamespace(webhooks={})
    deliverer = Deliverer(Settings(), accounts, view)  # type: ignore[arg-type]
    body = b'{"alert_id":"acme:2026-11-01:80","account_id":"acme","used":"80"}'
    await deliverer._deliver_alert(body)
    assert view.failures == 0, "the refused writes were retried"
    assert view.docs == {(alerts_key("acme"), "acme:2026-11-01:80"): body}


def _recorded(state: str, attempts: int) -> _Status:
    status = _Status("acme:2026-11-01:80", "acme", "main", "http://h/x")
    status.state, status.attempts = state, attempts
    return status


def test_a_status_recorded_further_by_another_worker_replaces_the_one_held() -> None:
    held = _recorded("pending", 2)  # from this worker's start, before a rebalance moved it
    assert _recorded("delivered", 3).supersedes(held)
    assert _recorded("pending", 5).supersedes(held)
    assert _recorded("delivered", 1).supersedes(None)


def test_a_status_held_final_or_as_far_stays() -> None:
    assert not _recorded("expired", 9).supersedes(_recorded("delivered", 3))
    # This worker's own attempt, recorded: the record is not ahead of it.
    assert not _recorded("pending", 2).supersedes(_recorded("pending", 2))
    assert not _recorded("pending", 1).supersedes(_recorded("pending", 2))


async def test_a_hand_over_stops_the_deliveries_in_flight() -> None:
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), None)  # type: ignore[arg-type]
    committed: list[str] = []

    async def commit_finished() -> None:
        committed.append("before the tasks stop")

    deliverer._commit_finished = commit_finished  # type: ignore[method-assign]
    running = asyncio.ensure_future(asyncio.sleep(3600))
    deliverer._inflight = {TopicPartition("usage.alerts.v1", 0): {7: running}}
    await deliverer._hand_over()
    assert committed == ["before the tasks stop"]
    await asyncio.sleep(0)
    assert running.cancelled()
    assert deliverer._inflight == {}


class _FlakyProducer:
    """A producer whose first ``failures`` sends fail."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("broker unreachable")
        self.sent.append(value)


@pytest.mark.parametrize("state", ["delivered", "expired"])
async def test_a_final_status_is_recorded_however_long_kafka_refuses_it(
    monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    monkeypatch.setattr("streams.deliverer._RECORD_RETRY_SECONDS", (0, 0))
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), _FlakyView(0))  # type: ignore[arg-type]
    producer = deliverer._producer = _FlakyProducer(failures=5)
    await deliverer._record(_recorded(state, 1))
    assert len(producer.sent) == 1  # recorded before the delivery could end


async def test_a_pending_status_is_left_to_the_next_attempt_when_kafka_refuses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streams.deliverer._RECORD_RETRY_SECONDS", (0, 0))
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), _FlakyView(0))  # type: ignore[arg-type]
    producer = deliverer._producer = _FlakyProducer(failures=5)
    await deliverer._record(_recorded("pending", 1))
    assert producer.sent == [] and producer.failures == 3  # two tries, then the next attempt
