"""Where webhooks may be delivered: public addresses only, unless an allowlist says otherwise.

An endpoint URL is chosen by whoever holds the admin token, but the POST comes from inside the
deployment, so without a policy a webhook could reach the cloud metadata service
(169.254.169.254), Redis, Kafka or any internal host. The policy is applied to the addresses
actually connected to: :class:`PublicResolver` filters what DNS returns (so a name cannot be
re-pointed at a private address between a check and the connection), and literal IP hosts,
which aiohttp does not resolve, are checked by :meth:`TargetPolicy.url_refusal`.
``CREDITFLOW_WEBHOOK_ALLOWED_NETWORKS`` lists the private networks that are allowed anyway
(the tests' local receiver on 127.0.0.1, an internal receiver of the operator's).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ("Network", "PublicResolver", "TargetPolicy", "TargetRefused")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(OSError):
    """A webhook target that resolves only to addresses the policy refuses."""


class TargetPolicy:
    """Public addresses, plus the allowed networks."""

    def __init__(self, allowed: Sequence[Network] = ()) -> None:
        self.allowed = tuple(allowed)

    def address_refusal(self, address: str) -> str | None:
        """Why a webhook may not connect to ``address`` (an IP), or None if it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed):
            return None
        if not ip.is_global or ip.is_multicast:
            return (
                f"{ip} is a private, loopback, link-local or reserved address "
                "(see CREDITFLOW_WEBHOOK_ALLOWED_NETWORKS)"
            )
        return None

    def url_refusal(self, url: str) -> str | None:
        """Why ``url`` may not be a webhook target without resolving it, or None.

        Refuses literal IP hosts outside the policy and ``localhost`` names; host names are
        checked when resolved (:class:`PublicResolver`, :meth:`resolved_refusal`).
        """
        host = urlsplit(url).hostname
        if not host:
            return "the URL has no host"
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return self.address_refusal("127.0.0.1")  # loopback by definition (RFC 6761)
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        return self.address_refusal(host)

    async def resolved_refusal(self, url: str, timeout: float = 2.0) -> str | None:  # noqa: ASYNC109
        """:meth:`url_refusal`, and for a host name, whether every address it has is refused.

        A name that does not resolve now is not refused here: delivery checks it again.
        """
        refusal = self.url_refusal(url)
        parts = urlsplit(url)
        if refusal is not None or parts.hostname is None:
            return refusal
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM),
                timeout,
            )
        except (OSError, TimeoutError):
            return None
        refusals = [self.address_refusal(str(info[4][0])) for info in infos]
        if refusals and all(refusals):
            return f"{parts.hostname} resolves only to refused addresses: {refusals[0]}"
        return None


class PublicResolver(AbstractResolver):
    """DNS for webhook deliveries: only the addresses the policy allows are connected to."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``; :class:`TargetRefused` if there are none."""
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.address_refusal(r["host"]) is None]
        if not allowed:
            first = self._policy.address_refusal(results[0]["host"]) if results else "none"
            raise TargetRefused(f"webhook host {host} refused: {first}")
        return allowed

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()
