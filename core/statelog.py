"""The partition state log: how a partition's state is written to, and read back from, Kafka.

Each applied batch becomes **one** delta record holding the new fence offset together with the
absolute values of the buckets it changed and the ids it remembered. One record is atomic, so the
state and the offset it reflects can never disagree, whatever dies when. Periodically the whole
state is written as a snapshot (in chunks) and older records are tombstoned, so the compacted
topic stays about the size of the live state.

Folding the log back rebuilds the state. A delta ``(s, e]`` is applied only when
``s <= applied < e``: records from a zombie writer that overlap (same input, same deterministic
result) are harmless, and a record that would leave a gap is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from core.partition import BatchOutcome, BucketValue, Limits, PartitionState

__all__ = (
    "FORMAT_VERSION",
    "StateFolder",
    "delta_record",
    "snapshot_records",
)

FORMAT_VERSION = 1

_Bucket = tuple[str, str, int, int, int, int]
"""``(account, app, bucket_ms, calls, micro, version)``."""


_Total = tuple[str, int, int, int]
"""``(account, period start ms, period end ms, micro)``."""
_Fired = tuple[str, int, int, int]
"""``(account, period start ms, threshold, period end ms)``."""


class _Delta(msgspec.Struct, array_like=True):
    v: int
    s: int
    e: int
    wm: int
    b: list[_Bucket]
    i: dict[str, list[tuple[str, int]]]
    p: list[_Total] = []
    f: list[_Fired] = []


class _Chunk(msgspec.Struct, array_like=True):
    v: int
    e: int
    wm: int
    n: int
    b: list[_Bucket]
    i: dict[str, list[tuple[str, int]]]
    p: list[_Total] = []
    f: list[_Fired] = []


_encoder = msgspec.json.Encoder()
_delta_decoder = msgspec.json.Decoder(_Delta)
_chunk_decoder = msgspec.json.Decoder(_Chunk)


def _group_ids(entries: list[tuple[str, str, int]]) -> dict[str, list[tuple[str, int]]]:
    grouped: dict[str, list[tuple[str, int]]] = {}
    for account_id, event_id, bucket in entries:
        grouped.setdefault(account_id, []).append((event_id, bucket))
    return grouped


def delta_record(outcome: BatchOutcome, watermark_ms: int) -> tuple[bytes, bytes]:
    """Key and value of the delta record for an applied batch."""
    buckets = [
        (key[0], key[1], key[2], value.calls, value.micro, value.version)
        for key, value in outcome.changed.items()
    ]
    delta = _Delta(
        FORMAT_VERSION,
        outcome.first_offset,
        outcome.last_offset,
        watermark_ms,
        buckets,
        {account: ids for account, ids in outcome.new_ids.items() if ids},
        outcome.period_totals,
        outcome.fired,
    )
    key = f"d:{outcome.first_offset}:{outcome.last_offset}".encode()
    return key, _encoder.encode(delta)


def snapshot_records(
    state: PartitionState,
    chunk_items: int = 20_000,
    chunk_bytes: int = 2 * 1024 * 1024,
    nonce: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """Key/value records holding the whole state of a partition.

    Pieces hold at most ``chunk_items`` items and about ``chunk_bytes`` bytes (ids can be up
    to 128 characters), far below the state topic's record limit. Keys carry a ``nonce`` of
    this snapshot, so chunks of two writers snapshotting at the same offset never mix.
    """
    nonce = nonce or uuid.uuid4().hex[:8]
    buckets: list[_Bucket] = [
        (key[0], key[1], key[2], cell[0], cell[1], cell[2]) for key, cell in state.buckets.items()
    ]
    ids = list(state.seen.items())
    pieces: list[tuple[list[_Bucket], list[tuple[str, str, int]]]] = [
        (part, [])
        for part in _pieces(buckets, chunk_items, chunk_bytes, lambda b: len(b[0]) + len(b[1]) + 64)
    ] or [([], [])]
    pieces += [
        ([], part)
        for part in _pieces(ids, chunk_items, chunk_bytes, lambda i: len(i[0]) + len(i[1]) + 24)
    ]
    totals = [(a, s, e, micro) for (a, s, e), micro in state.ledger.totals.items()]
    fired = [(a, s, t, end) for (a, s, t), end in state.ledger.fired.items()]
    total = len(pieces)
    records = []
    for number, (bucket_part, id_part) in enumerate(pieces):
        first = number == 0
        chunk = _Chunk(
            FORMAT_VERSION,
            state.applied,
            state.watermark_ms,
            total,
            bucket_part,
            _group_ids(id_part),
            totals if first else [],
            fired if first else [],
        )
        key = f"s:{state.applied}:{nonce}:{number}:{total}"
        records.append((key.encode(), _encoder.encode(chunk)))
    return records


_T = TypeVar("_T")


def _pieces(
    items: list[_T], max_items: int, max_bytes: int, size: Callable[[_T], int]
) -> Iterator[list[_T]]:
    piece: list[_T] = []
    used = 0
    for item in items:
        cost = size(item)
        if piece and (len(piece) >= max_items or used + cost > max_bytes):
            yield piece
            piece, used = [], 0
        piece.append(item)
        used += cost
    if piece:
        yield piece


@dataclass(slots=True)
class StateFolder:
    """Rebuilds a :class:`PartitionState` from the records of its state log, in log order."""

    state: PartitionState
    live_keys: set[bytes] = field(default_factory=set)
    bytes_since_snapshot: int = 0
    _chunks: dict[tuple[int, bytes], dict[int, _Chunk]] = field(default_factory=dict)

    @classmethod
    def new(cls, partition: int, limits: Limits) -> StateFolder:
        """A folder over an empty state."""
        return cls(PartitionState(partition, limits))

    def feed(self, key: bytes, value: bytes | None) -> None:
        """Apply one state-log record (``value`` None is a tombstone)."""
        if value is None:
            self.live_keys.discard(key)
            return
        self.live_keys.add(key)
        if key.startswith(b"d:"):
            self.bytes_since_snapshot += len(value)
            self._apply_delta(_delta_decoder.decode(value))
        elif key.startswith(b"s:"):
            _, _, nonce, number, _ = key.split(b":")
            self._collect_chunk(nonce, int(number), _chunk_decoder.decode(value))

    def _apply_delta(self, delta: _Delta) -> None:
        state = self.state
        if not delta.s <= state.applied < delta.e:
            return
        state.restore_buckets(
            ((account, app, bucket), BucketValue(calls, micro, version))
            for account, app, bucket, calls, micro, version in delta.b
        )
        state.seen.update(_ungroup(delta.i))
        state.ledger.restore(delta.p, delta.f)
        state.applied = delta.e
        state.watermark_ms = max(state.watermark_ms, delta.wm)

    def _collect_chunk(self, nonce: bytes, number: int, chunk: _Chunk) -> None:
        parts = self._chunks.setdefault((chunk.e, nonce), {})
        parts[number] = chunk
        if len(parts) < chunk.n:
            return
        del self._chunks[(chunk.e, nonce)]
        if chunk.e <= self.state.applied:
            return
        fresh = PartitionState(self.state.partition, self.state.limits)
        for part in parts.values():
            fresh.restore_buckets(
                ((account, app, bucket), BucketValue(calls, micro, version))
                for account, app, bucket, calls, micro, version in part.b
            )
            fresh.seen.update(_ungroup(part.i))
            fresh.ledger.restore(part.p, part.f)
        fresh.applied = chunk.e
        fresh.watermark_ms = chunk.wm
        self.state = fresh
        self.bytes_since_snapshot = 0


def _ungroup(grouped: dict[str, list[tuple[str, int]]]) -> Iterator[tuple[str, str, int]]:
    for account_id, entries in grouped.items():
        for event_id, bucket in entries:
            yield account_id, event_id, bucket
