"""Connections to the view's Redis: one server, or a Redis Cluster, chosen by the settings.

With ``REDIS_CLUSTER_NODES`` set (``host:port`` list, any of the cluster's nodes) the view uses
a :class:`redis.asyncio.cluster.RedisCluster`; otherwise ``REDIS_URL``. Everything above this
module works on both: every Lua call gets its keys in ``KEYS`` and all of them share one hash
tag, and calls on different slots go through non-transactional pipelines, which the cluster
client splits per node.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError

__all__ = ("Client", "Script", "connect", "lua", "run_pipeline", "sample_slots", "script")

Client = aioredis.Redis | RedisCluster
"""A view connection: a single server or a cluster."""


def connect(redis_url: str, cluster_nodes: str = "") -> Client:
    """A client for ``cluster_nodes`` if given, else ``redis_url`` (no I/O until first use)."""
    if cluster_nodes.strip():
        nodes = []
        for address in cluster_nodes.split(","):
            host, _, port = address.strip().rpartition(":")
            nodes.append(ClusterNode(host or "127.0.0.1", int(port)))
        return RedisCluster(startup_nodes=nodes, socket_timeout=5, socket_connect_timeout=2)
    return aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)


@dataclass(slots=True)
class Script:
    """A Lua script of the view and its SHA-1, for pipelined ``EVALSHA`` calls."""

    body: str
    sha: str
    loaded: bool = False
    """Loaded into the servers by this process (they may have lost it since: a restart)."""


def lua(name: str) -> str:
    """The text of one of the view's Lua scripts (``view/<name>.lua``)."""
    return resources.files("view").joinpath(f"{name}.lua").read_text()


def script(client: Client, name: str) -> Script:
    """One of the view's Lua scripts, for :func:`run_pipeline`."""
    body = lua(name)
    return Script(body, client.register_script(body).sha)


async def run_pipeline(
    client: Client, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """Run script calls in one non-transactional pipeline; load scripts a server lacks.

    A server that restarted or a replica promoted by a failover has an empty script cache;
    the calls are then sent again, which the view's versioned writes make harmless.
    """
    for called, _, _ in calls:
        if not called.loaded:
            await client.script_load(called.body)
            called.loaded = True
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for called, keys, args in calls:
                # Not pipe.evalsha(): redis-py's cluster pipeline refuses that method, though
                # it routes the command itself by its keys.
                pipe.execute_command("EVALSHA", called.sha, len(keys), *keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
        for body in {called.body for called, _, _ in calls}:
            await client.script_load(body)
    raise AssertionError("unreachable")


async def sample_slots(client: Client, slots: int) -> list[int]:
    """One random slot on every primary: a shard that lost its data shows in each of them."""
    if not isinstance(client, RedisCluster):
        return [random.randrange(slots)]
    await client.initialize()
    owned: dict[str, list[int]] = {}
    for slot, nodes in client.nodes_manager.slots_cache.items():
        owned.setdefault(nodes[0].name, []).append(slot)
    return [random.choice(node_slots) for node_slots in owned.values()]
