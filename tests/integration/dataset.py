"""Test traffic and its brute-force reference, built with the standard library only.

Nothing here imports creditflow: the reference must not share code (or bugs) with the system.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

Record = tuple[bytes | None, bytes]  # (key, value)


@dataclass
class Valid:
    event_id: str
    account: str
    app: str
    occurred: datetime
    credits: Decimal
    calls: int


@dataclass
class Dataset:
    records: list[Record] = field(default_factory=list)
    valid: dict[tuple[str, str], Valid] = field(default_factory=dict)
    rejections: list[tuple[str, bytes]] = field(default_factory=list)  # (reason, original bytes)
    accounts: list[str] = field(default_factory=list)


def _credits(rng: random.Random) -> tuple[Decimal, bytes]:
    """A random exact amount and how it is written in JSON (string or number)."""
    value = Decimal(rng.randint(0, 50_000_000)) / Decimal(10 ** rng.choice([0, 1, 3, 6]))
    text = format(value.normalize(), "f") if value else "0"
    if rng.random() < 0.3:
        return value, text.encode()  # a JSON number, read from its literal text
    return value, json.dumps(text).encode()


def event_json(
    event_id: str,
    account: str,
    app: str,
    occurred: datetime,
    credits_json: bytes,
    calls: int | None,
    **extra: object,
) -> bytes:
    """One event object's bytes, with credits inserted verbatim."""
    parts = [
        f'"event_id":{json.dumps(event_id)}',
        f'"account_id":{json.dumps(account)}',
        f'"app_id":{json.dumps(app)}',
        f'"occurred_at":{json.dumps(occurred.isoformat(timespec="milliseconds"))}',
        f'"credits":{credits_json.decode()}',
    ]
    if calls is not None:
        parts.append(f'"calls":{calls}')
    for name, value in extra.items():
        parts.append(f"{json.dumps(name)}:{json.dumps(value)}")
    return ("{" + ",".join(parts) + "}").encode()


def build(
    tag: str,
    seed: int,
    events: int = 3000,
    accounts: int = 5,
    apps: tuple[str, ...] = ("chat", "search", "ocr", "voice"),
    now: datetime | None = None,
    days: int = 30,
    duplicate_fraction: float = 0.05,
) -> Dataset:
    """Valid traffic (single, batch, unkeyed, mis-keyed records, resends) and its reference."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    data = Dataset(accounts=[f"acc{i}-{tag}" for i in range(accounts)])
    pending: dict[str, list[bytes]] = defaultdict(list)
    sent: list[bytes] = []
    for n in range(events):
        account = rng.choice(data.accounts)
        app = rng.choice(apps)
        occurred = now - timedelta(seconds=rng.uniform(60, days * 86400))
        if n < 40:
            # Pin a few events to exact bucket edges: [start, start + 15 min) must hold.
            occurred = occurred.replace(minute=rng.choice([0, 15, 30, 45]), second=0, microsecond=0)
        occurred = occurred.astimezone(
            ZoneInfo(rng.choice(["UTC", "Asia/Seoul", "America/Los_Angeles"]))
        )
        value, credits_json = _credits(rng)
        calls = rng.choice([None, 1, 1, 1, 0, 2, 3])
        event_id = f"{tag}-{n}-{rng.getrandbits(32):08x}"
        raw = event_json(event_id, account, app, occurred, credits_json, calls)
        data.valid[(account, event_id)] = Valid(
            event_id, account, app, occurred, value, 1 if calls is None else calls
        )
        pending[account].append(raw)
        sent.append(raw)
        if rng.random() < duplicate_fraction and sent:
            pending[account].append(raw)  # a producer retry, in the same or a later record
        if len(pending[account]) >= rng.randint(1, 60):
            _flush(rng, data, account, pending)
    for account in list(pending):
        _flush(rng, data, account, pending)
    return data


def _flush(
    rng: random.Random, data: Dataset, account: str, pending: dict[str, list[bytes]]
) -> None:
    items = pending.pop(account, [])
    if not items:
        return
    roll = rng.random()
    key: bytes | None = account.encode()
    if roll < 0.1:
        key = None  # unkeyed: must still count, on the account's partition
    elif roll < 0.2:
        key = rng.choice(data.accounts).encode()  # mis-keyed
    if len(items) == 1 and rng.random() < 0.5:
        data.records.append((key, items[0]))
    else:
        data.records.append((key, b"[" + b",".join(items) + b"]"))


def add_invalid(data: Dataset, tag: str, now: datetime, max_record_bytes: int) -> None:
    """One or more records of every invalid kind of the contract, with the expected verdicts."""
    account = data.accounts[0]
    ok = b'"12.5"'

    def good(i: int, **extra: object) -> bytes:
        return event_json(
            f"{tag}-bad-{i}", account, "chat", now - timedelta(hours=1), ok, 1, **extra
        )

    whole = [
        ("invalid_json", b'{"event_id": "x", '),
        ("invalid_json", b"[{]"),
        ("invalid_encoding", b'{"event_id": "\xff\xfe"}'),
        ("invalid_shape", b"42"),
        ("invalid_shape", b'"an event"'),
        ("empty_batch", b"[]"),
        ("batch_too_large", b"[" + b",".join([b"{}"] * 1001) + b"]"),
        ("record_too_large", b"[" + good(20_000) + b" " * max_record_bytes + b"]"),
    ]
    for reason, value in whole:
        data.records.append((account.encode(), value))
        data.rejections.append((reason, value))

    def raw_event(i: int, **fields: object) -> bytes:
        base: dict[str, object] = {
            "event_id": f"{tag}-inv-{i}",
            "account_id": account,
            "app_id": "chat",
            "occurred_at": (now - timedelta(hours=2)).isoformat(),
            "credits": "1",
        }
        base.update(fields)
        return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()

    bad_events = [
        ("invalid_event", raw_event(1, credits="-1")),
        ("invalid_event", raw_event(2, credits="abc")),
        (
            "invalid_event",
            b'{"event_id":"'
            + f"{tag}-inv-3".encode()
            + b'","account_id":"'
            + account.encode()
            + b'","app_id":"chat","occurred_at":"'
            + (now - timedelta(hours=2)).isoformat().encode()
            + b'","credits":0.1000000000000000055511151231257827}',
        ),
        ("invalid_event", raw_event(4, credits="1000000000.000001")),
        ("invalid_event", raw_event(5, app_id=_DROP)),
        ("invalid_event", raw_event(6, account_id="bad id!")),
        ("invalid_event", raw_event(7, event_id="")),
        ("invalid_event", raw_event(8, event_id="x" * 129)),
        ("invalid_event", raw_event(9, occurred_at="2026-11-01T10:00:00")),
        ("invalid_event", raw_event(10, colour="blue")),
        ("invalid_event", raw_event(11, attributes={"nested": {"a": 1}})),
        ("invalid_event", raw_event(12, attributes={"big": "x" * 2100})),
        ("invalid_event", raw_event(13, calls=-1)),
        ("invalid_event", raw_event(14, calls=1.5)),
        ("invalid_event", raw_event(15, calls=True)),
        ("invalid_event", b"17"),
        ("too_late", raw_event(16, occurred_at=(now - timedelta(days=40)).isoformat())),
        ("too_far_in_future", raw_event(17, occurred_at=(now + timedelta(hours=1)).isoformat())),
    ]
    # Half alone, half inside a batch next to valid events (each judged on its own).
    for position, (reason, raw) in enumerate(bad_events):
        if position % 2 == 0:
            data.records.append((account.encode(), raw))
        else:
            valid_raw = event_json(
                f"{tag}-mix-{position}", account, "ocr", now - timedelta(hours=3), b'"2"', 1
            )
            data.valid[(account, f"{tag}-mix-{position}")] = Valid(
                f"{tag}-mix-{position}", account, "ocr", now - timedelta(hours=3), Decimal(2), 1
            )
            data.records.append((None, b"[" + valid_raw + b"," + raw + b"]"))
        data.rejections.append((reason, raw))


class _Drop:
    pass


_DROP = _Drop()


# ------------------------------------------------------------------ reference answers


def reference_totals(
    data: Dataset, account: str, start: datetime, end: datetime
) -> dict[str, tuple[int, Decimal]]:
    """Per-app (calls, credits) of valid events with start <= occurred < end."""
    totals: dict[str, tuple[int, Decimal]] = {}
    for event in data.valid.values():
        if event.account == account and start <= event.occurred < end:
            calls, credits = totals.get(event.app, (0, Decimal(0)))
            totals[event.app] = (calls + event.calls, credits + event.credits)
    return totals


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at local midnights of ``tz`` (zones here have no skipped midnight)."""
    windows = []
    day: date = start.astimezone(tz).date()
    lo = start
    while lo < end:
        day += timedelta(days=1)
        hi = min(end, datetime.combine(day, time(0), tzinfo=tz))
        if hi > lo:
            windows.append((lo, hi))
        lo = hi
    return windows
