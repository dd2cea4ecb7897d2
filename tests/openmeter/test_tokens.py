"""Portal tokens: hashed records, scopes, expiry, revocation by tombstone."""

from __future__ import annotations

from api.auth import TokenStore, hash_token
from api.openmeter.tokens import PortalTokens, new_token, principal_of, record_key, token_json
from config.clock import now_ms


def test_a_record_holds_the_hash_never_the_token() -> None:
    record, token = new_token("acme", (), 3600, now_ms())
    assert token.startswith("cfp_") and len(token) >= 40
    assert record.sha256 == hash_token(token)
    assert token not in record.model_dump_json()
    assert "token" not in token_json(record, now_ms())
    assert token_json(record, now_ms(), token)["token"] == token


def test_scopes() -> None:
    every, _ = new_token("acme", (), 60, now_ms())
    principal = principal_of(every)
    assert principal.can_read("acme") and not principal.can_read("globex")
    assert not principal.can_write("acme") and not principal.is_admin
    assert {"portal:acme", "meter:credits", "meter:calls"} <= principal.scopes
    calls_only, _ = new_token("acme", ("calls",), 60, now_ms())
    limited = principal_of(calls_only)
    assert not limited.can_read("acme")  # the billing page shows credits: it needs both meters
    assert "meter:calls" in limited.scopes and "meter:credits" not in limited.scopes


def test_lookup_expiry_and_revocation_through_the_token_store() -> None:
    tokens = PortalTokens()
    store = TokenStore("admin-secret", [])
    store.issued = tokens.principal
    live, live_token = new_token("acme", (), 60, now_ms())
    old, old_token = new_token("acme", (), 60, now_ms() - 61_000)
    for record in (live, old):
        tokens.apply(record.id, record.model_dump_json().encode())
    found = store.principal(live_token)
    assert found is not None and found.can_read("acme")
    assert store.principal(old_token) is None  # expired
    assert [r.id for r in tokens.records()] == [live.id, old.id]  # newest first
    tokens.apply(live.id, None)  # the tombstone of an invalidation
    assert store.principal(live_token) is None
    assert tokens.get(live.id) is None
    assert store.principal("admin-secret") is not None


def test_ids_are_ulids_in_time_order() -> None:
    first, _ = new_token("acme", (), 60, 1_000)
    second, _ = new_token("acme", (), 60, 2_000)
    assert len(first.id) == 26 and first.id < second.id
    assert record_key(first.id) == f"portal:{first.id}".encode()
