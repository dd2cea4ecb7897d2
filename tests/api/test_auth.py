"""Tokens at start and on every request (findings 6 and 7 of issue 9), without a broker.

No request here gets past authentication, so the app never reaches Kafka or Redis.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.auth import TokenStore, bearer_token, hash_token
from cli.main import main
from config.settings import DEV_ADMIN_TOKEN, AdminTokenError, Settings

READ_TOKEN = "read-token-for-acme-0123456789"


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n  - name: acme-reader\n    sha256: {hash_token(READ_TOKEN)}\n"
        "    scopes: ['read:acme']\n"
    )
    return path


def _client(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://creditflow.test")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "api.example.com"])
def test_finding_06_no_admin_token_off_loopback_refuses_to_start(
    host: str, tokens_file: Path
) -> None:
    settings = Settings(admin_token=None, api_host=host, tokens_file=tokens_file)
    with pytest.raises(AdminTokenError, match="CREDITFLOW_ADMIN_TOKEN is unset"):
        create_app(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_finding_06_dev_token_only_on_loopback(host: str) -> None:
    assert Settings(admin_token=None).admin_token_for(host) == DEV_ADMIN_TOKEN
    with pytest.raises(AdminTokenError, match="public dev token"):
        Settings(admin_token=DEV_ADMIN_TOKEN).admin_token_for("0.0.0.0")


@pytest.mark.parametrize("token", ["", "   ", "two words", "caf\u00e9"])
def test_finding_06_empty_or_unpresentable_admin_token_is_refused(
    token: str, tokens_file: Path
) -> None:
    settings = Settings(admin_token=token, api_host="127.0.0.1", tokens_file=tokens_file)
    with pytest.raises(AdminTokenError, match="CREDITFLOW_ADMIN_TOKEN"):
        create_app(settings)
    with pytest.raises(ValueError, match="admin token"):
        TokenStore(token, [])


def test_finding_06_cli_api_refuses_to_start_off_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CREDITFLOW_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CREDITFLOW_API_HOST", raising=False)
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.append(args))
    assert main(["api", "--host", "0.0.0.0"]) == 2
    assert served == []
    assert "refusing to start" in capsys.readouterr().err
    monkeypatch.setenv("CREDITFLOW_ADMIN_TOKEN", "")
    assert main(["api"]) == 2
    assert served == []


def test_bearer_token_parsing() -> None:
    assert bearer_token(b"Bearer abc.DEF-123") == "abc.DEF-123"
    assert bearer_token(b"bearer   abc  ") == "abc"
    for header in (b"", b"Bearer", b"Bearer ", b"Bearer    ", b"Basic abc", b"Bearer a b"):
        assert bearer_token(header) is None, header
    assert bearer_token(b"Bearer \xff\xfe") is None
    assert bearer_token("Bearer caf\u00e9".encode()) is None


@pytest.mark.parametrize(
    "header",
    [b"Bearer \xff\xfe", b"Bearer \xc3\x28", b"\xff\xfe", b"Bearer ", b"Bearer caf\xc3\xa9"],
)
@pytest.mark.parametrize("path", ["/v1/accounts/acme/usage", "/v1/accounts/acme/billing"])
async def test_finding_07_non_utf8_bearer_is_401(
    header: bytes, path: str, tokens_file: Path
) -> None:
    settings = Settings(admin_token="an-admin-secret-0123", api_host="::1", tokens_file=tokens_file)
    async with _client(settings) as client:
        response = await client.get(path, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
