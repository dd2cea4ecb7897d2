"""Shared builders for the pure-core unit tests (no Kafka, no Redis, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from core.alerts import AlertKey
from core.billing import Explicit, Monthly, Terms
from core.buckets import BUCKET_MS, iso_utc, to_epoch_ms
from core.days import DAY_MS, Bucket, DayKey, DayUsage
from core.ledger import PeriodKey, PeriodLedger, PeriodTotal, TermsLookup
from core.money import micro_from_text
from core.partition import BatchOutcome, Limits, PartitionState, SourceRecord
from core.state import MemoryState
from core.statecodec import day_of_key, decode_day, id_key, parse_day_key

# Hypothesis: no example database on disk (tests/ is committed), no per-example deadline
# (a cold zoneinfo cache can make the first example slow), a modest budget to stay fast.
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
THOROUGH = settings(FAST, max_examples=150)

MISSING: Any = object()
"""Pass as a field value to :func:`event` to leave the field out."""

T0 = to_epoch_ms(datetime(2026, 11, 27, tzinfo=UTC))
"""2026-11-27T00:00:00Z, on the bucket grid."""

MINUTE = 60_000
HOUR = 3_600_000
DAY = 24 * HOUR


def event(**fields: Any) -> dict[str, Any]:
    """A valid event (the contract's example) with ``fields`` overridden or removed."""
    base: dict[str, Any] = {
        "event_id": "0b6f3c1e-9d4e-4a51-9f0a-2a7c1d1e5b11",
        "account_id": "acme",
        "app_id": "support-bot",
        "occurred_at": "2026-11-27T04:12:33.120+09:00",
        "credits": "12.5",
        "calls": 1,
        "attributes": {"model": "alli-large"},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not MISSING}


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def ev(
    event_id: str,
    occurred_ms: int,
    *,
    account: str = "acme",
    app: str = "bot",
    credits: str = "1",
    calls: int = 1,
) -> dict[str, Any]:
    """A valid event at an epoch-ms instant."""
    return {
        "event_id": event_id,
        "account_id": account,
        "app_id": app,
        "occurred_at": iso_utc(occurred_ms),
        "credits": credits,
        "calls": calls,
    }


def rec(
    offset: int,
    timestamp_ms: int,
    value: Any,
    *,
    key: bytes | None = b"acme",
    partition: int = 0,
) -> SourceRecord:
    """An input record; ``value`` is bytes or a JSON-able event/batch."""
    raw = value if isinstance(value, bytes) else dumps(value)
    return SourceRecord(partition, offset, timestamp_ms, key, raw)


@st.composite
def event_streams(draw: st.DrawFn, accounts: list[str]) -> list[SourceRecord]:
    """Records whose events mostly fall in the window of their append time, with retries
    (an earlier event resent), an id reused on another day, and some rejects."""
    docs: list[dict[str, Any]] = []
    records = []
    clock = 0
    for offset in range(draw(st.integers(min_value=1, max_value=24))):
        clock += draw(st.integers(min_value=-10, max_value=70))  # append times may wobble
        items: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            if docs and draw(st.integers(0, 3)) == 0:
                items.append(draw(st.sampled_from(docs)))  # a retry
                continue
            minute = clock + draw(st.integers(min_value=-75, max_value=8))
            reuse = docs and draw(st.integers(0, 5)) == 0
            doc = ev(
                draw(st.sampled_from(docs))["event_id"] if reuse else f"e{len(docs)}",
                T0 + minute * MINUTE,
                account=draw(st.sampled_from(accounts)),
                app=draw(st.sampled_from(["a", "b"])),
                calls=draw(st.integers(min_value=0, max_value=3)),
            )
            micro = draw(st.integers(min_value=0, max_value=5_000_000))
            doc["credits"] = f"{micro // 1_000_000}.{micro % 1_000_000:06d}"
            if draw(st.integers(0, 9)) == 0:
                doc["calls"] = -1  # an invalid event
            docs.append(doc)
            items.append(doc)
        value: Any = items[0] if len(items) == 1 and draw(st.booleans()) else items
        records.append(rec(offset, T0 + clock * MINUTE, value))
    return records


def local_only(_account: str) -> int:
    """A partitioner that sends every account to partition 0."""
    return 0


@dataclass
class Shell:
    """Plays the worker's shell around the pure core, in memory.

    Applies runs against a :class:`MemoryState`, writes each outcome back (days, ids, expiry)
    and keeps what the local store would keep of the ledger, so a test can "restart" from it.
    """

    limits: Limits = field(default_factory=Limits)
    partition: int = 0
    partition_for: Callable[[str], int] = local_only
    store: MemoryState = field(default_factory=MemoryState)
    state: PartitionState = field(init=False)
    totals: dict[PeriodKey, PeriodTotal] = field(default_factory=dict)
    """Period totals as persisted (outcome by outcome)."""
    fired: dict[AlertKey, int] = field(default_factory=dict)
    published: dict[DayKey, DayUsage] = field(default_factory=dict)
    """Every day value an outcome reported, the latest by version (what a view would hold,
    expired days included)."""

    def __post_init__(self) -> None:
        self.state = PartitionState(self.partition, self.limits)

    def apply(
        self, records: Sequence[SourceRecord], terms_for: TermsLookup | None = None
    ) -> BatchOutcome:
        """Apply a run and persist its outcome, as the worker does after each run."""
        out = self.state.apply(records, self.store, self.partition_for, terms_for)
        self.persist(out)
        return out

    def seed(
        self, key: PeriodKey, history_micro: int, terms: Terms | None, arrival_ms: int
    ) -> BatchOutcome:
        """Add a period's history (what the shell reads from the view) and persist it."""
        out = self.state.seed(key, history_micro, terms, arrival_ms)
        self.persist(out)
        return out

    def persist(self, out: BatchOutcome) -> None:
        """Write an outcome back, in the order the local batch does."""
        ids = [key for day_ids in out.new_ids.values() for key in day_ids]
        self.store.write(out.days.items(), ids, out.expired_before_day)
        for key, usage in out.decoded_days().items():
            known = self.published.get(key)
            if known is None or known.version <= usage.version:
                self.published[key] = usage
        self.totals.update(out.totals)
        self.fired.update(out.fired)
        for period in out.expired_totals:
            self.totals.pop(period, None)
        for alert in out.expired_fired:
            self.fired.pop(alert, None)

    def restart(self) -> Shell:
        """A new shell over the same persisted state: fence, store and ledger, nothing else."""
        ledger = PeriodLedger()
        ledger.restore(self.totals.items(), self.fired.items())
        again = Shell(self.limits, self.partition, self.partition_for, self.store)
        again.state = PartitionState(
            self.partition,
            self.limits,
            self.state.applied,
            self.state.watermark_ms,
            self.state.first_day,
            ledger,
        )
        again.totals, again.fired = dict(self.totals), dict(self.fired)
        again.published = dict(self.published)
        return again

    def day(self, account: str, app: str, day: int) -> DayUsage | None:
        """The stored usage of a day."""
        (value,) = self.store.day_values([DayKey(account, app, day)])
        usage = None if value is None else decode_day(value)
        return usage

    def buckets(self) -> dict[tuple[str, str, int], Bucket]:
        """Every stored bucket by ``(account, app, bucket start ms)``."""
        out = {}
        for raw, value in self.store.usage.items():
            key = parse_day_key(raw)
            for slot, bucket in decode_day(value).slots.items():
                out[(key.account_id, key.app_id, key.day * DAY_MS + slot * BUCKET_MS)] = bucket
        return out

    def bucket(self, account: str, app: str, start_ms: int) -> Bucket | None:
        """One stored bucket."""
        return self.buckets().get((account, app, start_ms))

    def seen(self, account: str, event_id: str, occurred_ms: int) -> bool:
        """Whether the store remembers an id (on the UTC day of ``occurred_ms``)."""
        return id_key(occurred_ms // DAY_MS, account, event_id) in self.store.ids

    def days(self) -> set[int]:
        """The days the store holds usage or ids of."""
        return {key.day for key in map(parse_day_key, self.store.usage)} | {
            day_of_key(raw) for raw in self.store.ids
        }


# A corpus of hand-written events shared by the validator tests and the model-agreement test:
# (label, bytes, accepted?). Rejections cover every field rule of the contract.
def _raw(**fields: Any) -> bytes:
    return dumps(event(**fields))


def _with_credits(literal: str) -> bytes:
    """The example event with ``credits`` given as raw JSON text (a number literal, say)."""
    return _raw(credits="__C__").replace(b'"__C__"', literal.encode())


def _with_calls(literal: str) -> bytes:
    return _raw(calls=424242).replace(b"424242", literal.encode())


CORPUS: list[tuple[str, bytes, bool]] = [
    ("contract example", _raw(), True),
    ("no calls (default 1)", _raw(calls=MISSING), True),
    ("no attributes", _raw(attributes=MISSING), True),
    ("null attributes", _raw(attributes=None), True),
    ("empty attributes", _raw(attributes={}), True),
    (
        "flat scalar attributes",
        _raw(attributes={"s": "x", "i": 3, "f": 1.5, "b": True, "n": None}),
        True,
    ),
    ("calls 0", _raw(calls=0), True),
    ("calls 1e9", _raw(calls=1_000_000_000), True),
    ("credits 0", _raw(credits="0"), True),
    ("credits integer string", _raw(credits="7"), True),
    ("credits 6 fractional digits", _raw(credits="0.000001"), True),
    ("credits trailing zeros", _raw(credits="12.500000000"), True),
    ("credits leading zeros", _raw(credits="007.25"), True),
    ("credits max 1e9", _raw(credits="1000000000"), True),
    ("credits max with zeros", _raw(credits="1000000000.000000"), True),
    ("credits JSON number", _with_credits("12.5"), True),
    ("credits JSON integer", _with_credits("3"), True),
    ("credits JSON 1e3", _with_credits("1e3"), True),
    ("credits JSON 1E+3", _with_credits("1E+3"), True),
    ("credits JSON 2.5e-5", _with_credits("2.5e-5"), True),
    ("credits JSON many trailing zeros", _with_credits("12.5" + "0" * 40), True),
    ("credits JSON -0", _with_credits("-0"), True),
    ("credits JSON 1e9", _with_credits("1e9"), True),
    ("credits string with JSON escape", _with_credits('"1\\u0032.5"'), True),
    ("UTC Z offset", _raw(occurred_at="2026-11-27T04:12:33Z"), True),
    ("half-hour offset", _raw(occurred_at="2026-11-27T04:12:33.5+05:30"), True),
    ("microseconds", _raw(occurred_at="2026-11-27T04:12:33.123456-03:00"), True),
    ("event_id 128 chars", _raw(event_id="x" * 128), True),
    ("event_id any characters", _raw(event_id="retry #1 / café ✓"), True),
    ("ids 64 chars", _raw(account_id="a" * 64, app_id="B" * 64), True),
    ("ids with . _ -", _raw(account_id="9acme.co_uk-1", app_id="app.v2_x-y"), True),
    ("attributes exactly 2048 bytes", _raw(attributes={"k": "v" * 2040}), True),
    # --- rejections -----------------------------------------------------------------------
    ("missing event_id", _raw(event_id=MISSING), False),
    ("empty event_id", _raw(event_id=""), False),
    ("event_id 129 chars", _raw(event_id="x" * 129), False),
    ("event_id number", _raw(event_id=17), False),
    ("missing account_id", _raw(account_id=MISSING), False),
    ("empty account_id", _raw(account_id=""), False),
    ("account_id 65 chars", _raw(account_id="a" * 65), False),
    ("account_id leading dash", _raw(account_id="-acme"), False),
    ("account_id leading dot", _raw(account_id=".acme"), False),
    ("account_id leading underscore", _raw(account_id="_acme"), False),
    ("account_id space", _raw(account_id="ac me"), False),
    ("account_id slash", _raw(account_id="ac/me"), False),
    ("account_id pipe", _raw(account_id="ac|me"), False),
    ("account_id non-ASCII", _raw(account_id="acmé"), False),
    ("account_id trailing newline", _raw(account_id="acme\n"), False),
    ("account_id null", _raw(account_id=None), False),
    ("missing app_id", _raw(app_id=MISSING), False),
    ("app_id colon", _raw(app_id="bot:1"), False),
    ("app_id trailing newline", _raw(app_id="bot\n"), False),
    ("missing occurred_at", _raw(occurred_at=MISSING), False),
    ("naive occurred_at", _raw(occurred_at="2026-11-27T04:12:33"), False),
    ("date-only occurred_at", _raw(occurred_at="2026-11-27"), False),
    ("occurred_at without seconds", _raw(occurred_at="2026-11-27T04:12+09:00"), False),
    ("occurred_at garbage", _raw(occurred_at="yesterday"), False),
    ("occurred_at epoch number", _raw(occurred_at=1795720353), False),
    ("occurred_at invalid date", _raw(occurred_at="2026-02-30T00:00:00Z"), False),
    ("missing credits", _raw(credits=MISSING), False),
    ("credits negative string", _raw(credits="-1"), False),
    ("credits negative number", _with_credits("-0.5"), False),
    ("credits 7 fractional digits", _raw(credits="0.0000001"), False),
    ("credits 7 fractional digits number", _with_credits("12.3456789"), False),
    ("credits float artefact", _with_credits("0.1000000000000000055511151231257827"), False),
    ("credits 29 significant digits", _with_credits("1.0000000000000000000000000001"), False),
    ("credits tiny exponent", _with_credits("1e-1000030"), False),
    ("credits over 1e9 string", _raw(credits="1000000000.000001"), False),
    ("credits over 1e9 number", _with_credits("1e10"), False),
    ("credits huge integer", _with_credits("1" + "0" * 40), False),
    ("credits 5000-digit string", _raw(credits="9" * 5000), False),
    ("credits exponent string", _raw(credits="1e3"), False),
    ("credits NaN string", _raw(credits="NaN"), False),
    ("credits Infinity string", _raw(credits="Infinity"), False),
    ("credits empty string", _raw(credits=""), False),
    ("credits leading space", _raw(credits=" 1"), False),
    ("credits plus sign", _raw(credits="+1"), False),
    ("credits comma", _raw(credits="1,5"), False),
    ("credits bare point", _raw(credits=".5"), False),
    ("credits bool", _raw(credits=True), False),
    ("credits null", _raw(credits=None), False),
    ("credits array", _raw(credits=["1"]), False),
    ("credits object", _raw(credits={"value": "1"}), False),
    ("credits NaN literal (bad JSON)", _with_credits("NaN"), False),
    ("credits Infinity literal (bad JSON)", _with_credits("Infinity"), False),
    ("calls negative", _raw(calls=-1), False),
    ("calls over 1e9", _raw(calls=1_000_000_001), False),
    ("calls fractional", _with_calls("1.5"), False),
    ("calls float-looking integer", _with_calls("1.0"), False),
    ("calls string", _raw(calls="1"), False),
    ("calls bool", _raw(calls=True), False),
    ("calls null", _raw(calls=None), False),
    ("unknown field", _raw(extra="x"), False),
    ("nested attributes", _raw(attributes={"model": {"name": "x"}}), False),
    ("list attribute value", _raw(attributes={"tags": ["a"]}), False),
    ("attributes array", _raw(attributes=["a"]), False),
    ("attributes string", _raw(attributes="model=x"), False),
    ("attributes 2049 bytes", _raw(attributes={"k": "v" * 2041}), False),
    ("attributes far over 2 KiB", _raw(attributes={f"k{i}": "v" * 100 for i in range(30)}), False),
    ("array instead of object", b"[" + _raw() + b"]", False),
    ("bad JSON", _raw()[:-1], False),
    ("non-UTF-8 in a string", _raw(event_id="e-__X__").replace(b"__X__", b"\xff"), False),
]


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch ms of a UTC wall-clock instant."""
    return to_epoch_ms(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


def terms(
    *,
    account: str = "acme",
    allotment: str = "1000",
    period: Monthly | Explicit | None = None,
    tz: str = "UTC",
    rate: str = "0.012",
    currency: str = "USD",
    minor_digits: int = 2,
    thresholds: tuple[int, ...] = (50, 80, 100),
    version: int = 1,
) -> Terms:
    """Contract terms built directly (no config): ``allotment`` in credits, exact."""
    return Terms(
        account_id=account,
        plan="custom",
        allotment_micro=micro_from_text(allotment),
        period=period or Monthly(date(2026, 1, 1)),
        tz=ZoneInfo(tz),
        rate=Decimal(rate),
        currency=currency,
        minor_digits=minor_digits,
        thresholds=thresholds,
        version=version,
    )
