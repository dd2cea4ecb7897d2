"""Connections to the view's Redis: one server, or a Redis Cluster, chosen by the settings.

With ``REDIS_CLUSTER_NODES`` set (``host:port`` list, any of the cluster's nodes) the view uses
a :class:`redis.asyncio.cluster.RedisCluster`; otherwise ``REDIS_URL``. Everything above this
module works on both: every Lua call gets its keys in ``KEYS`` and all of them share one hash
tag, and calls on different slots go through non-transactional pipelines, which the cluster
client splits per node.

Redis replicates asynchronously: a master killed -9 after it answered a write but before its
replica had it loses that write at the failover, while the writer has it as done. On a cluster
the writes of the view therefore count only once a replica of every master written has
acknowledged them (``WAIT`` on the connection that sent them, in the same pipeline).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, NoScriptError, RedisClusterException, RedisError

__all__ = (
    "REPLICA_WAIT_MS",
    "Client",
    "Command",
    "ReplicaWaitError",
    "Script",
    "connect",
    "lua",
    "run_commands",
    "run_pipeline",
    "sample_slots",
    "script",
)

REPLICA_WAIT_MS = 1000
"""How long a cluster write waits for a replica's acknowledgement by default (0: not at all)."""

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


class ReplicaWaitError(RedisError):
    """A write reached its master, but no replica of it acknowledged the write in time."""


Command = tuple[str, Sequence[Any]]
"""A command for :func:`run_commands`: the key it is routed by, and its arguments."""


async def run_commands(
    client: Client, commands: Sequence[Command], replica_wait_ms: int = 0
) -> list[Any]:
    """Run commands in one non-transactional pipeline and return their results.

    With ``replica_wait_ms`` on a cluster, one replica of every master written must
    acknowledge the writes within that time, or :class:`ReplicaWaitError` is raised and the
    caller keeps them for a retry, so only idempotent writes should ask for it. A master the
    cluster lists without a live replica is not waited for. Every failure is a
    :class:`~redis.exceptions.RedisError`, a slot that no node serves (mid-failover) too.
    """
    waits: list[tuple[ClusterNode, set[int]]] = []
    try:
        if replica_wait_ms and isinstance(client, RedisCluster):
            waits = await _masters_with_replicas(client, [key for key, _ in commands])
        async with client.pipeline(transaction=False) as pipe:
            for _, args in commands:
                pipe.execute_command(*args)
            for node, _ in waits:
                # On the node's pipeline connection, after the writes: WAIT counts the
                # replicas that acknowledged what this connection wrote.
                pipe.execute_command("WAIT", 1, replica_wait_ms, target_nodes=node)
            results: list[Any] = await pipe.execute()
    except RedisClusterException as error:
        raise ClusterError(str(error)) from error
    if waits:
        assert isinstance(client, RedisCluster)
        await _confirm(client, waits, results[len(commands) :], replica_wait_ms)
    return results[: len(commands)]


async def _masters_with_replicas(
    client: RedisCluster, keys: Sequence[str]
) -> list[tuple[ClusterNode, set[int]]]:
    """The masters that ``keys`` live on and that have a replica, with the slots written."""
    await client.initialize()
    masters: dict[str, tuple[ClusterNode, set[int]]] = {}
    cache = client.nodes_manager.slots_cache
    for key in keys:
        slot = client.keyslot(key)
        nodes = cache.get(slot, [])
        if len(nodes) > 1:
            masters.setdefault(nodes[0].name, (nodes[0], set()))[1].add(slot)
    return list(masters.values())


async def _confirm(
    client: RedisCluster,
    waits: Sequence[tuple[ClusterNode, set[int]]],
    acknowledged: Sequence[Any],
    replica_wait_ms: int,
) -> None:
    cache = client.nodes_manager.slots_cache
    for (node, slots), replicas in zip(waits, acknowledged, strict=True):
        # A slot that moved while the pipeline ran was written elsewhere (the client follows
        # MOVED): this WAIT does not vouch for it.
        moved = any(cache.get(slot, [node])[0].name != node.name for slot in slots)
        if moved or int(replicas) < 1:
            # A replica the cluster has since declared failed is no longer listed: the next
            # write does not wait for it.
            with contextlib.suppress(RedisError, RedisClusterException):
                await client.nodes_manager.initialize()
            raise ReplicaWaitError(
                f"no replica of {node.name} acknowledged the write within {replica_wait_ms} ms"
            )


async def run_pipeline(
    client: Client,
    calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]],
    replica_wait_ms: int = 0,
) -> list[Any]:
    """Run script calls in one non-transactional pipeline; load scripts a server lacks.

    A server that restarted or a replica promoted by a failover has an empty script cache;
    the calls are then sent again, which the view's versioned writes make harmless.
    ``replica_wait_ms`` is :func:`run_commands`'s.
    """
    for called, _, _ in calls:
        if not called.loaded:
            await client.script_load(called.body)
            called.loaded = True
    # Not pipe.evalsha(): redis-py's cluster pipeline refuses that method, though it routes
    # the command itself by its keys.
    commands = [
        (keys[0], ("EVALSHA", called.sha, len(keys), *keys, *args)) for called, keys, args in calls
    ]
    for attempt in range(2):
        try:
            return await run_commands(client, commands, replica_wait_ms)
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
