"""run_commands on a cluster without Redis: which masters it waits for, and what it refuses."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError, SlotNotCoveredError

from view.connection import ReplicaWaitError, run_commands

KEY = "cf:{acme}:alerts"
MASTER = ClusterNode("127.0.0.1", 1)
REPLICA = ClusterNode("127.0.0.1", 2)
OTHER = ClusterNode("127.0.0.1", 3)


class _Pipeline:
    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.cluster.sent.append((args, options))

    async def execute(self) -> list[Any]:
        if self.cluster.failure is not None:
            raise self.cluster.failure
        if self.cluster.moves_to is not None:
            # What following a MOVED reply does to the client's slot table.
            self.cluster.nodes_manager.slots_cache[self.cluster.slot] = [self.cluster.moves_to]
        return [self.cluster.acks if args[0] == "WAIT" else 1 for args, _ in self.cluster.sent]


class _Cluster(RedisCluster):
    """A cluster client whose topology is given and whose pipelines answer from memory.

    Its startup node listens nowhere: the topology refresh after a shortfall fails at once,
    which run_commands ignores.
    """

    def __init__(self, *nodes: ClusterNode, acks: int = 1) -> None:
        super().__init__(startup_nodes=[ClusterNode("127.0.0.1", 1)])
        self.slot = self.keyslot(KEY)
        self.nodes_manager.slots_cache = {self.slot: list(nodes)}
        self.acks = acks
        self.failure: Exception | None = None
        self.moves_to: ClusterNode | None = None
        self.sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def initialize(self, *args: Any, **kwargs: Any) -> _Cluster:
        return self

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        return _Pipeline(self)


HSET = [(KEY, ("HSET", KEY, "acme:2026-11-01:80", b"{}"))]


async def test_a_write_waits_for_a_replica_on_the_master_that_took_it() -> None:
    cluster = _Cluster(MASTER, REPLICA)
    assert await run_commands(cluster, HSET, 500) == [1]
    (write, _), (wait, options) = cluster.sent
    assert write[0] == "HSET"
    assert wait == ("WAIT", 1, 500)
    assert options["target_nodes"] is MASTER


async def test_a_write_no_replica_acknowledged_is_an_error_the_writer_retries() -> None:
    with pytest.raises(ReplicaWaitError) as refused:
        await run_commands(_Cluster(MASTER, REPLICA, acks=0), HSET, 500)
    assert isinstance(refused.value, RedisError)


async def test_a_write_whose_slot_moved_meanwhile_is_not_vouched_for() -> None:
    cluster = _Cluster(MASTER, REPLICA)
    cluster.moves_to = OTHER
    with pytest.raises(ReplicaWaitError):
        await run_commands(cluster, HSET, 500)


async def test_a_master_without_a_replica_and_a_wait_of_zero_send_no_wait() -> None:
    alone = _Cluster(MASTER)
    assert await run_commands(alone, HSET, 500) == [1]
    off = _Cluster(MASTER, REPLICA)
    assert await run_commands(off, HSET, 0) == [1]
    assert [args[0] for args, _ in alone.sent + off.sent] == ["HSET", "HSET"]


async def test_a_cluster_client_error_is_a_redis_error() -> None:
    # redis-py raises SlotNotCoveredError (not a RedisError) for a slot no node serves, as
    # during a failover; the writer keeps its days only for RedisErrors.
    cluster = _Cluster(MASTER, REPLICA)
    cluster.failure = SlotNotCoveredError("slot 5 is not covered")
    with pytest.raises(RedisError, match="not covered"):
        await run_commands(cluster, HSET, 500)
