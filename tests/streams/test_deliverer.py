"""The deliverer without a broker: signing, statuses, hand-overs (a fake view and producer)."""

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import Iterable
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from config.accounts import Endpoint
from config.settings import Settings
from streams.deliverer import Deliverer, _Handover, _Status, backoff_seconds, sign
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
    """A view writer whose first ``failures`` document writes fail; it keeps documents."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.pending: dict[tuple[str, str], bytes] = {}
        self.docs: dict[tuple[str, str], bytes] = {}

    async def write(
        self,
        days: object,
        progress: object = None,
        metrics: object = None,
        docs: Iterable[tuple[str, str, bytes]] = (),
    ) -> bool:
        return await self.write_docs(docs)

    async def write_docs(self, docs: Iterable[tuple[str, str, bytes]] = ()) -> bool:
        self.pending.update(((name, field), body) for name, field, body in docs)
        if self.failures:
            self.failures -= 1
            return False
        self.docs.update(self.pending)
        self.pending.clear()
        return True


def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.deliverer._RETRY_SECONDS", (0, 0))


async def test_an_alert_without_endpoints_reaches_the_view_once_redis_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The processor's own write of the document is lost if the worker dies between its state
    # commit and the view write; the alert topic is then the only place the alert is.
    _quick(monkeypatch)
    view = _FlakyView(failures=2)
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), view)  # type: ignore[arg-type]
    body = b'{"alert_id":"acme:2026-11-01:80","account_id":"acme","used":"80"}'
    await deliverer._deliver_alert(body)
    assert view.failures == 0, "the refused writes were retried"
    assert view.docs == {(alerts_key("acme"), "acme:2026-11-01:80"): body}


def _recorded(state: str, attempts: int) -> _Status:
    status = _Status("acme:2026-11-01:80", "acme", "main", "http://h/x")
    status.state, status.attempts, status.recorded = state, attempts, True
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


class _Message(NamedTuple):
    offset: int
    value: bytes | None


async def test_after_a_rebalance_the_statuses_another_worker_recorded_are_read_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This worker read the statuses at its start; another then delivered the alert, and a
    # rebalance gives this worker the alert's partition before that offset was committed.
    delivered = _recorded("delivered", 3).to_wire()

    async def partitions(settings: object, topic: str) -> list[int]:
        return [0]

    async def deliveries(settings: object, topic: str, partitions: object) -> object:
        yield [_Message(0, json.dumps(delivered).encode())]

    monkeypatch.setattr("streams.deliverer.partitions_of", partitions)
    monkeypatch.setattr("streams.deliverer.replay", deliveries)
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), _FlakyView(0))  # type: ignore[arg-type]
    held = deliverer._statuses[_recorded("pending", 2).key] = _recorded("pending", 2)
    deliverer._commit_finished = _nothing  # type: ignore[method-assign]
    await _Handover(deliverer).on_partitions_revoked(set())
    await _Handover(deliverer).on_partitions_assigned(set())
    await deliverer._statuses_read()  # what the consume loop does before its next alerts
    assert deliverer._statuses[held.key].state == "delivered"
    deliverer._statuses[held.key] = held
    await deliverer._statuses_read()  # no rebalance since: not read again
    assert deliverer._statuses[held.key] is held


async def _nothing() -> None:
    return None


async def test_a_hand_over_stops_the_deliveries_in_flight_even_if_its_commit_fails() -> None:
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), None)  # type: ignore[arg-type]

    async def commit_finished() -> None:
        raise CommitFailedError("the group moved on")

    deliverer._commit_finished = commit_finished  # type: ignore[method-assign]
    running = asyncio.ensure_future(asyncio.sleep(3600))
    deliverer._inflight = {TopicPartition("usage.alerts.v1", 0): {7: running}}
    with pytest.raises(CommitFailedError):
        await deliverer.hand_over()
    await asyncio.sleep(0)
    assert running.cancelled()
    assert deliverer._inflight == {}


def test_an_alert_fetched_again_after_a_rebalance_gets_one_task() -> None:
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), None)  # type: ignore[arg-type]
    tp = TopicPartition("usage.alerts.v1", 0)
    deliverer._start({tp: [_Message(7, None)]})
    first = deliverer._inflight[tp][7]
    deliverer._start({tp: [_Message(7, None), _Message(8, None)]})
    assert deliverer._inflight[tp][7] is first and set(deliverer._inflight[tp]) == {7, 8}


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
    _quick(monkeypatch)
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), _FlakyView(0))  # type: ignore[arg-type]
    producer = deliverer._producer = _FlakyProducer(failures=5)
    status = _recorded(state, 1)
    status.recorded = False
    await deliverer._record(status)
    assert len(producer.sent) == 1  # recorded before the delivery could end
    assert status.recorded


async def test_a_pending_status_is_left_to_the_next_attempt_when_kafka_refuses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _quick(monkeypatch)
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), _FlakyView(0))  # type: ignore[arg-type]
    producer = deliverer._producer = _FlakyProducer(failures=5)
    await deliverer._record(_recorded("pending", 1))
    assert producer.sent == [] and producer.failures == 3  # two tries, then the next attempt


async def test_a_final_state_a_cancelled_delivery_did_not_record_is_recorded_on_resume() -> None:
    # A rebalance cancelled the delivery after its POST succeeded, before its record.
    view = _FlakyView(0)
    deliverer = Deliverer(Settings(), SimpleNamespace(webhooks={}), view)  # type: ignore[arg-type]
    producer = deliverer._producer = _FlakyProducer(failures=0)
    status = deliverer._statuses[_recorded("delivered", 2).key] = _recorded("delivered", 2)
    status.recorded = False
    alert = {"alert_id": status.alert_id, "account_id": "acme"}
    await deliverer._deliver(alert, b"{}", Endpoint(id="main", url="http://h/x", secret="s" * 32))
    assert [json.loads(body)["state"] for body in producer.sent] == ["delivered"]
    assert status.recorded
