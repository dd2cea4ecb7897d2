"""Bearer tokens with scopes: ``admin``, ``read:<account>``, ``write:<account>``.

Tokens are configured as SHA-256 hashes (never in clear), so the token file can be committed
and shared; the admin token comes from ``CREDITFLOW_ADMIN_TOKEN``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError

__all__ = (
    "Principal",
    "TokenStore",
    "authenticate",
    "authorization_header",
    "bearer_token",
    "hash_token",
)

# A presented token: visible ASCII, no spaces (RFC 6750's token68 and a little more).
_TOKEN = re.compile(rb"[!-~]+")


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token, the form stored in the token file."""
    return hashlib.sha256(token.encode()).hexdigest()


def authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The raw ``Authorization`` value of ASGI headers (empty when absent)."""
    return next((value for name, value in headers if name.lower() == b"authorization"), b"")


def bearer_token(header: bytes) -> str | None:
    r"""The token of an ``Authorization: Bearer <token>`` value, or None if it holds none.

    The one parser of both request paths. It works on bytes: a value that is not ASCII (not
    even UTF-8, such as ``Bearer \xff\xfe``) or a blank token is no token, so the caller
    answers 401 rather than failing on a decode.
    """
    scheme, _, token = header.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not _TOKEN.fullmatch(token):
        return None
    return token.decode("ascii")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what they may do."""

    name: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        """Admin tokens may do anything."""
        return "admin" in self.scopes

    def can_read(self, account_id: str) -> bool:
        """Read the account's usage and billing."""
        return self.is_admin or f"read:{account_id}" in self.scopes

    def can_write(self, account_id: str) -> bool:
        """Send events for the account."""
        return self.is_admin or f"write:{account_id}" in self.scopes


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = Field(min_length=1)


class _TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[_TokenEntry] = Field(default_factory=list)


class TokenStore:
    """Token hashes and their principals.

    ``issued`` looks up tokens issued at run time (portal tokens) by hash, after the file's.
    """

    def __init__(self, admin_token: str, entries: list[tuple[str, str, list[str]]]) -> None:
        if bearer_token(b"Bearer " + admin_token.encode()) != admin_token:
            raise ValueError("the admin token must be non-empty visible ASCII")
        self._by_hash = {hash_token(admin_token): Principal("admin", frozenset({"admin"}))}
        for name, digest, scopes in entries:
            self._by_hash[digest] = Principal(name, frozenset(scopes))
        self.issued: Callable[[str], Principal | None] | None = None

    @classmethod
    def load(cls, admin_token: str, path: Path) -> TokenStore:
        """Read the token file (missing file: admin only)."""
        data = yaml.safe_load(path.read_text()) if path.exists() else None
        parsed = _TokenFile.model_validate(data or {})
        return cls(admin_token, [(t.name, t.sha256, t.scopes) for t in parsed.tokens])

    def principal(self, token: str) -> Principal | None:
        """The principal of a presented token, if known (and, if issued, not expired)."""
        digest = hash_token(token)
        found = self._by_hash.get(digest)
        if found is None and self.issued is not None:
            return self.issued(digest)
        return found

    def principal_of(self, header: bytes) -> Principal | None:
        """The principal of a raw ``Authorization`` value, if it carries a known token."""
        token = bearer_token(header)
        return None if token is None else self.principal(token)


async def authenticate(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    token = bearer_token(authorization_header(request.headers.raw))
    challenge = {"WWW-Authenticate": "Bearer"}
    if token is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", challenge)
    store: TokenStore = request.app.state.tokens
    principal = store.principal(token)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or expired token", challenge)
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]
