"""How fresh an answer is: ``as_of`` and ``lag`` from the workers' per-partition progress.

Each worker reports, per input partition it owns, the last offset whose effects are in the
serving view (``applied``), the partition's end offset, the append time of the newest applied
record (``watermark_ms``) and when the end offset was read (``checked_ms``). Everything appended
before ``checked_ms`` has an offset below ``end``; if ``applied`` reaches ``end - 1`` the view is
complete up to ``checked_ms``, otherwise only up to ``watermark_ms``.

Known gap: an event published under the wrong key is counted once its worker re-routes it to
the account's partition, normally within one batch; until then ``as_of`` may already cover it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ("Freshness", "Progress", "freshness")


@dataclass(frozen=True, slots=True)
class Progress:
    """One partition's progress line, as stored in the view."""

    applied: int
    end: int
    watermark_ms: int
    checked_ms: int

    def encode(self) -> str:
        """Compact text form."""
        return f"{self.applied},{self.end},{self.watermark_ms},{self.checked_ms}"

    @classmethod
    def decode(cls, line: str) -> Progress:
        """Parse :meth:`encode`'s output."""
        applied, end, watermark, checked = (int(part) for part in line.split(","))
        return cls(applied, end, watermark, checked)

    @property
    def lag(self) -> int:
        """Records appended but not applied when the end offset was read."""
        return max(0, self.end - 1 - self.applied)

    @property
    def complete_as_of(self) -> int:
        """Instant before which every record of this partition is reflected.

        Records are applied in append order, so everything up to the newest applied record's
        append time is in; when nothing was left at ``checked_ms``, everything before it is in.
        """
        if self.lag == 0:
            return max(self.checked_ms, self.watermark_ms)
        return self.watermark_ms


@dataclass(frozen=True, slots=True)
class Freshness:
    """``as_of`` (epoch ms, None when unknown) and ``lag`` (records) of an answer."""

    as_of_ms: int | None
    lag: int


def freshness(progress: Mapping[int, Progress], partitions: int) -> Freshness:
    """Freshness over all input partitions: an unkeyed event may sit in any of them.

    A partition that no worker has reported yet makes ``as_of`` unknown, and so does one that
    can vouch for nothing yet (its first records' changes still wait to be published): "complete
    as of 1970" would be true and useless.
    """
    lag = sum(line.lag for line in progress.values())
    if any(partition not in progress for partition in range(partitions)):
        return Freshness(None, lag)
    as_of = min(line.complete_as_of for line in progress.values())
    return Freshness(as_of if as_of > 0 else None, lag)
