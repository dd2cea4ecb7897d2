"""Portal tokens: short-lived bearer tokens scoped to one account and the meters named.

Where they live: the compacted config topic (``portal:{id}`` records), which every API
process already tails for contracts. So a token works on every process, survives restarts
and the loss of Redis (the view is derived and may be wiped; tokens are not derivable), is
checked from memory on the hot path (no round trip per request), and a revocation (a
tombstone) reaches every process within the tail's poll interval. Only the token's SHA-256 is
stored; the token itself is shown once, at creation. The secret has 256 random bits, so a
plain hash cannot be reversed by guessing.

What a token may do (:func:`principal_of`): query its meters through
``/api/v1/portal/meters/{slug}/query``; and, when it names every meter (or none), read its
account like a ``read:<account>`` token, which is what the billing page needs.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, hash_token
from api.openmeter.meters import METERS
from config.clock import now_ms
from core.buckets import iso_utc
from core.events import ID_PATTERN

__all__ = (
    "KIND",
    "PortalToken",
    "PortalTokens",
    "new_token",
    "principal_of",
    "record_key",
    "token_json",
)

KIND: Final = "portal"
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class PortalToken(BaseModel):
    """A portal token as stored in the config topic (its hash, never the token)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    subject: str = Field(pattern=ID_PATTERN)
    allowed_meter_slugs: tuple[str, ...] = ()
    created_at_ms: int
    expires_at_ms: int

    def expired(self, now_ms: int) -> bool:
        """Whether the token can no longer be used."""
        return now_ms >= self.expires_at_ms


def record_key(token_id: str) -> bytes:
    """Config-topic key of a portal token."""
    return f"{KIND}:{token_id}".encode()


def _ulid(now_ms: int) -> str:
    """A ULID (time-ordered id, OpenMeter's id format): 48-bit time, 80 random bits."""
    value = (now_ms << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_token(
    subject: str, meters: tuple[str, ...], ttl_seconds: int, now_ms: int
) -> tuple[PortalToken, str]:
    """A fresh token record and the token itself (``cfp_`` and 43 URL-safe characters)."""
    token = "cfp_" + secrets.token_urlsafe(32)
    record = PortalToken(
        id=_ulid(now_ms),
        sha256=hash_token(token),
        subject=subject,
        allowed_meter_slugs=meters,
        created_at_ms=now_ms,
        expires_at_ms=now_ms + ttl_seconds * 1000,
    )
    return record, token


def principal_of(record: PortalToken) -> Principal:
    """What the token may do: ``portal:<account>``, ``meter:<slug>`` and maybe ``read:``."""
    meters = set(record.allowed_meter_slugs or METERS)
    scopes = {f"portal:{record.subject}", *(f"meter:{slug}" for slug in meters)}
    if meters >= set(METERS):
        scopes.add(f"read:{record.subject}")
    return Principal(f"portal:{record.id}", frozenset(scopes))


def token_json(record: PortalToken, now_ms: int, token: str | None = None) -> dict[str, Any]:
    """OpenMeter's ``PortalToken`` schema (``token`` only at creation)."""
    body: dict[str, Any] = {
        "id": record.id,
        "subject": record.subject,
        "expiresAt": iso_utc(record.expires_at_ms),
        "expired": record.expired(now_ms),
        "createdAt": iso_utc(record.created_at_ms),
        "allowedMeterSlugs": list(record.allowed_meter_slugs),
    }
    if token is not None:
        body["token"] = token
    return body


class PortalTokens:
    """The portal tokens this process has read from the config topic, by id and by hash."""

    def __init__(self) -> None:
        self._by_id: dict[str, PortalToken] = {}
        self._by_hash: dict[str, tuple[PortalToken, Principal]] = {}

    def apply(self, token_id: str, value: bytes | None) -> None:
        """A config-topic record (None: a tombstone, the token is revoked or cleaned up)."""
        old = self._by_id.pop(token_id, None)
        if old is not None:
            self._by_hash.pop(old.sha256, None)
        if value is None:
            return
        record = PortalToken.model_validate_json(value)
        self._by_id[token_id] = record
        self._by_hash[record.sha256] = (record, principal_of(record))

    def principal(self, digest: str) -> Principal | None:
        """The principal of a token by its SHA-256, unless unknown or expired."""
        found = self._by_hash.get(digest)
        if found is None or found[0].expired(now_ms()):
            return None
        return found[1]

    def records(self) -> list[PortalToken]:
        """Every known token, newest first."""
        return sorted(self._by_id.values(), key=lambda r: (r.created_at_ms, r.id), reverse=True)

    def get(self, token_id: str) -> PortalToken | None:
        """A token by id."""
        return self._by_id.get(token_id)
