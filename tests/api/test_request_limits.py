"""Request bodies are capped while they stream in (finding 9 of issue 9), without a broker.

Every request here is refused before anything is published, so no Kafka is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import hash_token
from config.settings import Settings

WRITE_TOKEN = "write-token-for-acme-0123456789"
LIMIT = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        f"tokens:\n  - name: acme-writer\n    sha256: {hash_token(WRITE_TOKEN)}\n"
        "    scopes: ['write:acme']\n"
    )
    settings = Settings(
        admin_token="an-admin-secret-0123", tokens_file=tokens, max_request_bytes=LIMIT
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://creditflow.test")


async def test_finding_09_chunked_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    sent = 0

    async def endless_array() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"["
        for _ in range(64 * LIMIT // CHUNK):  # 64 times the limit
            sent += CHUNK
            yield b" " * CHUNK

    async with client:
        response = await client.post(
            "/v1/events",
            content=endless_array(),
            headers={"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert str(LIMIT) in response.json()["error"]["message"]
    assert sent <= LIMIT + CHUNK, f"read {sent} bytes of a body capped at {LIMIT}"


async def test_finding_09_declared_length_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient,
) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"[]"

    async with client:
        response = await client.post(
            "/v1/events",
            content=body(),
            headers={
                "Authorization": f"Bearer {WRITE_TOKEN}",
                "Content-Length": str(LIMIT + 1),
            },
        )
        assert response.status_code == 413
        assert read == 0, "the body was read although Content-Length was over the limit"
        bad = await client.post(
            "/v1/events",
            content=body(),
            headers={"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Length": "-1"},
        )
        assert bad.status_code == 400


async def test_a_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    """Just under the cap is not refused for its size (it is judged as events: not JSON here)."""
    async with client:
        response = await client.post(
            "/v1/events",
            content=b"[" + b" " * (LIMIT - 2) + b"x",
            headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_a_problem_quotes_only_the_start_of_the_path(client: httpx.AsyncClient) -> None:
    path = "/api/v1/" + "x" * 5000
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["instance"] == path[:256]
