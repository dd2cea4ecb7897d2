"""Redis key layout of the serving view (shared by the writer in the worker and the API reader).

* ``cf:b:{account}``  hash ``{app}|{bucket index}`` -> ``{version}:{calls}:{micro}``
* ``cf:c:{account}``  sorted set of those fields, scored by the account's change sequence
* ``cf:v:{account}``  the account's change sequence (incremented per bucket write)
* ``cf:alerts:{account}``      hash ``alert_id`` -> alert JSON (as published to usage.alerts.v1)
* ``cf:deliveries:{account}``  hash ``{alert_id}|{endpoint}`` -> delivery status JSON
* ``cf:accounts``     set of accounts with usage
* ``cf:progress``     hash ``{input partition}`` -> progress line (see :mod:`core.freshness`)
* ``cf:metrics``      hash of counters (``events_accepted``, ``events_duplicate``,
  ``dlq:{reason}``, ``alerts_fired``, ``deliveries:{state}`` ...)
* ``cf:epoch``        id of a complete view; absent while the view is empty or rebuilding
* ``cf:rebuild``      lock held by the worker rebuilding the view

A bucket index is the bucket start in epoch ms divided by 900,000.
"""

from __future__ import annotations

from typing import Final

from core.buckets import BUCKET_MS

__all__ = (
    "ACCOUNTS",
    "EPOCH",
    "METRICS",
    "PROGRESS",
    "REBUILD_LOCK",
    "alerts_key",
    "as_text",
    "bucket_field",
    "buckets_key",
    "deliveries_key",
    "parse_bucket_field",
)

ACCOUNTS: Final = "cf:accounts"
PROGRESS: Final = "cf:progress"
METRICS: Final = "cf:metrics"
EPOCH: Final = "cf:epoch"
REBUILD_LOCK: Final = "cf:rebuild"


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (clients may be configured to decode or not)."""
    return value if isinstance(value, str) else value.decode()


def buckets_key(account_id: str) -> str:
    """Hash of an account's buckets."""
    return f"cf:b:{account_id}"


def alerts_key(account_id: str) -> str:
    """Hash of an account's fired alerts."""
    return f"cf:alerts:{account_id}"


def deliveries_key(account_id: str) -> str:
    """Hash of an account's webhook delivery statuses."""
    return f"cf:deliveries:{account_id}"


def bucket_field(app_id: str, bucket_ms: int) -> str:
    """Field of one bucket inside the account hash."""
    return f"{app_id}|{bucket_ms // BUCKET_MS}"


def parse_bucket_field(field: str) -> tuple[str, int]:
    """``(app_id, bucket start ms)`` of a field."""
    app_id, _, index = field.rpartition("|")
    return app_id, int(index) * BUCKET_MS
