"""Kafka as a three-node KRaft cluster: replicated topics, and kill -9 of a broker mid-stream.

The ``kafka_cluster`` fixture starts a fresh cluster with scripts/stack (``KAFKA_BROKERS=3``)
beside the single node the other tests use, and stops it after this module. The fault case is
black-box like the others in test_faults.py: publish a known stream, kill, compare every bucket
of the Redis view and of the bucket topic with the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from config.topics import ensure_topics, topic_specs
from tests.integration.cluster import Cluster
from tests.integration.harness import Namespace, new_env, wait_until
from tests.integration.test_faults import FAST_GROUP, Run, run_case

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

ALL_NODES = [1, 2, 3]


def _namespace(cluster: Cluster, label: str) -> Namespace:
    return new_env(label, extra={**FAST_GROUP, "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap})


async def test_topics_on_the_cluster_have_three_replicas_and_min_isr_two(
    kafka_cluster: Cluster,
) -> None:
    settings = _namespace(kafka_cluster, "cluster-topics").settings()
    await ensure_topics(settings)
    names = [spec.name for spec in topic_specs(settings)]
    partitions: dict[tuple[str, int], dict[str, object]] = {}
    configs: dict[str, str | None] = {}

    async def settled() -> bool:  # each broker learns of new topics a moment after creation
        partitions.update(await kafka_cluster.partitions(names))
        configs.update(await kafka_cluster.topic_config(names, "min.insync.replicas"))
        return {topic for topic, _ in partitions} == set(names) and set(configs) == set(names)

    with contextlib.suppress(AssertionError):  # the assertions below say what is missing
        await wait_until(settled, timeout=15, interval=0.2)
    assert {topic for topic, _ in partitions} == set(names)
    for where, info in partitions.items():
        assert info["replicas"] == ALL_NODES, where
        assert info["isr"] == ALL_NODES, where
    assert configs == dict.fromkeys(names, "2")


async def _namespace_coordinated_by_the_controller(cluster: Cluster) -> Namespace:
    """A namespace whose consumer group's coordinator is the active controller's node.

    Killing that node then takes the controller, the group coordinator and (4 partitions on 3
    brokers, placed round robin) the leadership of at least one partition of every topic at once.
    """
    controller = cluster.active_controller()
    assert controller in ALL_NODES, "scripts/stack status names no active controller"
    for _ in range(40):
        namespace = _namespace(cluster, "cluster-kill9")
        if await cluster.coordinator(namespace.env["CREDITFLOW_GROUP_ID"]) == controller:
            return namespace
    raise AssertionError(f"no group id out of 40 is coordinated by node {controller}")


async def test_kill9_of_the_controller_coordinator_and_leader_mid_stream(
    kafka_cluster: Cluster,
) -> None:
    cluster = kafka_cluster
    namespace = await _namespace_coordinated_by_the_controller(cluster)
    settings = namespace.settings()
    group = settings.group_id
    topics = {"calls": settings.calls_topic, "state": settings.state_topic}
    topics["buckets"] = settings.buckets_topic

    async def kill_and_restart(run: Run) -> None:
        await asyncio.sleep(6)
        node = await cluster.coordinator(group)
        controller = cluster.active_controller()
        partitions = await cluster.partitions(list(topics.values()))
        led = {
            label: sorted(
                p for (t, p), info in partitions.items() if t == topic and info["leader"] == node
            )
            for label, topic in topics.items()
        }
        survivors = {n: pid for n, (pid, _) in cluster.nodes_up().items() if n != node}
        await asyncio.to_thread(cluster.stack, "kill9", f"kafka{node}")
        killed = time.monotonic()
        await asyncio.sleep(6)  # the stream goes on with two nodes, past the 3 s fencing
        restarting = time.monotonic()
        await asyncio.to_thread(cluster.stack, "up", "kafka")  # restarts only the dead node
        restarted = time.monotonic()
        after = cluster.nodes_up()
        assert sorted(after) == ALL_NODES, after
        assert {n: after[n][0] for n in survivors} == survivors, "up restarted a healthy node"

        found: dict[tuple[str, int], dict[str, object]] = {}

        async def back_in_every_isr() -> bool:
            found.update(await cluster.partitions(list(topics.values())))
            return all(info["isr"] == ALL_NODES for info in found.values())

        try:
            await wait_until(back_in_every_isr, timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"node {node} is not back in every ISR: {found}") from None
        run.notes.update(
            cluster_start_seconds=cluster.start_seconds,
            killed_node=node,
            killed_was_controller=node == controller,
            killed_was_group_coordinator=True,
            killed_led_partitions=led,
            node_down_seconds=round(restarted - killed, 1),
            node_restart_seconds=round(restarted - restarting, 1),
            restart_to_all_isr_seconds=round(time.monotonic() - restarted, 1),
        )

    line = await run_case(
        "cluster-kill9",
        events=20_000,
        seconds=20,
        faults=kill_and_restart,
        seed=17,
        namespace=namespace,
    )
    # The roles the kill was meant to hit (checked after the figures are recorded).
    assert line["killed_was_controller"], line
    assert line["killed_led_partitions"]["calls"], line
    assert line["killed_led_partitions"]["state"], line
    partitions = await cluster.partitions(list(topics.values()))
    assert all(info["replicas"] == ALL_NODES for info in partitions.values()), partitions
