"""Redis key layout of the serving view (shared by the writer in the worker and the API reader).

Every key starts with the view prefix (setting ``CREDITFLOW_VIEW_PREFIX``, default ``cf``), so
several views can share one Redis or Redis Cluster. An account's keys carry the account as
their hash tag, so they live in one cluster slot and one Lua call can hold them all:

* ``cf:{acme}:s:2026-11``   hash ``{app}:{day of month}`` -> the day's buckets
  (:func:`view.codec.encode`: version, then slot prefix sums)
* ``cf:{acme}:t:2026-11``   hash ``{app}`` -> the app's 31 day totals of the UTC month
  (:func:`view.codec.encode`, fixed-width entries), the rollup long ranges are summed from
* ``cf:{acme}:v``           hash: ``#`` -> the account's change sequence, ``2026-11`` -> the
  sequence of the month's last change (so change tracking costs one field per month)
* ``cf:{acme}:alerts``      hash ``alert_id`` -> alert JSON (as published to usage.alerts.v1)
* ``cf:{acme}:deliveries``  hash ``{alert_id}|{endpoint}`` -> delivery status JSON
* ``cf:{3a}:ready``         one marker per cluster slot (16,384; the tag is chosen to hash to
  that slot): the id of the view epoch that slot's accounts are complete in
  (``pending:<id>`` while a rebuild fills it). A shard that lost its data lost its markers.

Global keys, each written by its own call (they live in other slots):

* ``cf:accounts``  set of accounts with usage
* ``cf:progress``  hash ``{input partition}`` -> progress line (see :mod:`core.freshness`)
* ``cf:metrics``   hash of counters (``events_accepted``, ``dlq:{reason}`` ...)
* ``cf:rebuild``   lock held by the worker rebuilding the view
"""

from __future__ import annotations

import re
from binascii import crc_hqx
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import count
from typing import Final

__all__ = (
    "DEFAULT_PREFIX",
    "SLOTS",
    "ViewKeys",
    "alerts_key",
    "as_text",
    "day_field",
    "deliveries_key",
    "key_slot",
    "month_id",
)

DEFAULT_PREFIX: Final = "cf"
SLOTS: Final = 16_384
"""Redis Cluster hash slots."""

_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}(:[A-Za-z0-9._-]{1,64})*")


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (clients may be configured to decode or not)."""
    return value if isinstance(value, str) else value.decode()


def key_slot(tag: str) -> int:
    """The Redis Cluster slot of keys whose hash tag is ``tag`` (CRC16/XMODEM mod 16384)."""
    return crc_hqx(tag.encode(), 0) % SLOTS


@cache
def _slot_tags() -> tuple[str, ...]:
    """For every slot, the shortest hex number whose CRC16 lands on it (about 0.1 s, once)."""
    tags: list[str | None] = [None] * SLOTS
    missing = SLOTS
    for number in count():
        tag = format(number, "x")
        slot = key_slot(tag)
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
            if not missing:
                return tuple(str(tag) for tag in tags)
    raise AssertionError("unreachable")


@lru_cache(maxsize=1 << 12)
def month_id(month: int) -> str:
    """``YYYY-MM`` of a month index (``year * 12 + month - 1``), as used in key names."""
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def day_field(app_id: str, day_of_month: int) -> str:
    """Field of one app's day inside a month's ``s`` hash (ids never contain ``:``)."""
    return f"{app_id}:{day_of_month}"


def alerts_key(account_id: str) -> str:
    """Name, below the prefix, of the hash of an account's fired alerts."""
    return f"{{{account_id}}}:alerts"


def deliveries_key(account_id: str) -> str:
    """Name, below the prefix, of the hash of an account's webhook delivery statuses."""
    return f"{{{account_id}}}:deliveries"


@dataclass(frozen=True, slots=True)
class ViewKeys:
    """The key names of one view (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        # A brace would change the hash tag, and so the slot, of every key.
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(
                f"view prefix {self.prefix[:70]!r} must be 1-64 characters of "
                "[A-Za-z0-9._-], optionally in ':'-separated parts"
            )

    def name(self, relative: str) -> str:
        """A key from its name below the prefix (:func:`alerts_key`, :func:`deliveries_key`)."""
        return f"{self.prefix}:{relative}"

    @property
    def accounts(self) -> str:
        """Set of accounts with usage."""
        return f"{self.prefix}:accounts"

    @property
    def progress(self) -> str:
        """Hash of progress lines by input partition."""
        return f"{self.prefix}:progress"

    @property
    def metrics(self) -> str:
        """Hash of counters."""
        return f"{self.prefix}:metrics"

    @property
    def rebuild_lock(self) -> str:
        """Lock of the worker rebuilding the view."""
        return f"{self.prefix}:rebuild"

    def changes(self, account_id: str) -> str:
        """Hash of the account's change sequence and its months' last changes."""
        return f"{self.prefix}:{{{account_id}}}:v"

    def day_slots(self, account_id: str, month: int) -> str:
        """Hash of an account's days (their buckets) in one UTC month."""
        return f"{self.prefix}:{{{account_id}}}:s:{month_id(month)}"

    def day_totals(self, account_id: str, month: int) -> str:
        """Hash of an account's day totals per app in one UTC month."""
        return f"{self.prefix}:{{{account_id}}}:t:{month_id(month)}"

    def marker(self, slot: int) -> str:
        """The completeness marker of one cluster slot."""
        return f"{self.prefix}:{{{_slot_tags()[slot]}}}:ready"

    def marker_of(self, account_id: str) -> str:
        """The completeness marker of the slot holding the account's keys."""
        return self.marker(key_slot(account_id))
