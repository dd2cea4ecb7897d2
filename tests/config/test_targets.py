"""Webhook targets: public addresses only, no redirects (finding 11), without a broker.

The deliveries here go to a real aiohttp receiver on loopback, through the deliverer's own
HTTP client and attempt logic; only Kafka and Redis are left out.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from config.accounts import Endpoint
from config.settings import Settings
from config.targets import PublicResolver, TargetPolicy, TargetRefused
from streams.deliverer import Deliverer, _Status, webhook_session

REFUSED = [
    "169.254.169.254",  # cloud metadata
    "127.0.0.1",
    "10.0.0.7",
    "172.16.3.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fe80::1%eth0",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("address", REFUSED)
def test_finding_11_private_loopback_and_link_local_addresses_are_refused(address: str) -> None:
    assert TargetPolicy().address_refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert TargetPolicy().address_refusal(address) is None


def test_the_allowlist_permits_its_networks_only() -> None:
    settings = Settings(webhook_allowed_networks="127.0.0.0/8, 10.1.0.0/16")
    policy = TargetPolicy(settings.webhook_networks)
    assert policy.address_refusal("127.0.0.1") is None
    assert policy.address_refusal("10.1.2.3") is None
    assert policy.address_refusal("10.2.0.1") is not None
    assert policy.address_refusal("169.254.169.254") is not None
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(webhook_allowed_networks="127.0.0.0/8,not-a-network")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost:6379/",
        "https://api.localhost./hook",
        "http://10.0.0.1/hook",
    ],
)
def test_finding_11_literal_private_hosts_and_localhost_names_are_refused(url: str) -> None:
    assert TargetPolicy().url_refusal(url) is not None


def test_host_names_are_left_to_the_resolver() -> None:
    assert TargetPolicy().url_refusal("https://hooks.example.com/creditflow") is None


class _Fixed(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_finding_11_resolved_addresses_are_filtered_before_connecting() -> None:
    mixed = PublicResolver(TargetPolicy(), _Fixed("10.0.0.1", "93.184.215.14"))
    assert [r["host"] for r in await mixed.resolve("hooks.example.com", 443)] == ["93.184.215.14"]
    private = PublicResolver(TargetPolicy(), _Fixed("169.254.169.254"))
    with pytest.raises(TargetRefused, match=r"169\.254\.169\.254"):
        await private.resolve("metadata.example.com", 80)


@pytest.fixture
async def receiver() -> AsyncIterator[dict[str, int]]:
    """A loopback receiver: /hook redirects (307) to /elsewhere, which counts its hits."""
    hits = {"hook": 0, "elsewhere": 0}

    async def hook(request: web.Request) -> web.Response:
        hits["hook"] += 1
        return web.Response(status=307, headers={"Location": "/elsewhere"})

    async def elsewhere(request: web.Request) -> web.Response:
        hits["elsewhere"] += 1
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hits["port"] = port
    try:
        yield hits
    finally:
        await runner.cleanup()


async def _attempt(settings: Settings, url: str) -> _Status:
    deliverer = Deliverer(settings, None, None)  # type: ignore[arg-type]
    deliverer._session = webhook_session(settings)
    status = _Status("acme:2026-11-01:80", "acme", "main", url)
    try:
        await deliverer._attempt(status, b"{}", Endpoint(id="main", url=url, secret="s" * 32))
    finally:
        await deliverer._session.close()
    return status


async def test_finding_11_redirects_are_never_followed(receiver: dict) -> None:
    settings = Settings(webhook_allowed_networks="127.0.0.0/8")
    status = await _attempt(settings, f"http://127.0.0.1:{receiver['port']}/hook")
    assert status.last_status == 307
    assert status.state == "pending", "a redirect is a failed attempt"
    assert receiver["hook"] == 1
    assert receiver["elsewhere"] == 0, "the signed body was re-POSTed to the redirect target"


async def test_finding_11_loopback_target_is_refused_without_the_allowlist(receiver: dict) -> None:
    for host in ("127.0.0.1", "localhost"):
        status = await _attempt(Settings(), f"http://{host}:{receiver['port']}/hook")
        assert status.state == "pending"
        assert status.last_status is None
        assert "refused" in (status.last_error or "")
    assert receiver["hook"] == 0, "a refused target was connected to"
