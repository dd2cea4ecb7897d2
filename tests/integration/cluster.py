"""The three-node Kafka cluster of the cluster tests: started by scripts/stack beside the single
node, and asked who does what (active controller, group coordinator, partition leaders, ISRs).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from tests.integration.harness import stack, wait_until


def _default_bootstrap() -> str:
    """K+89, K+91, K+93 for the single node's port K (controllers +6: K+95..K+99).

    Every port odd: in the ephemeral range Linux gives outgoing connections even ports first, and
    the nodes connect to each other before each binds its client port.
    """
    first = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(",")[0]
    host, port = first.rsplit(":", 1)
    return ",".join(f"{host}:{int(port) + 89 + 2 * n}" for n in range(3))


@dataclass
class Cluster:
    """Addresses of the cluster and the scripts/stack environment that runs it."""

    bootstrap: str
    start_seconds: float = 0.0

    @classmethod
    def from_env(cls) -> Cluster:
        return cls(os.environ.get("KAFKA_CLUSTER_BOOTSTRAP_SERVERS") or _default_bootstrap())

    @property
    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_BROKERS": "3",
            "KAFKA_CONTROLLER_PORT_OFFSET": "6",
        }

    def stack(self, *args: str) -> str:
        return stack(*args, env=self.env)

    def nodes_up(self) -> dict[int, tuple[int, bool]]:
        """Node -> (pid, is the active controller) of the nodes scripts/stack reports up."""
        lines = self.stack_status()
        return {
            int(found[1]): (int(found[2]), bool(found[3]))
            for found in re.finditer(
                r"kafka(\d+): up \([^,]*, pid (\d+)(, active controller)?\)", lines
            )
        }

    def stack_status(self) -> str:
        """``scripts/stack status kafka`` (which exits 1 while a node is down)."""
        try:
            return self.stack("status", "kafka")
        except subprocess.CalledProcessError as error:
            return str(error.stdout)

    def active_controller(self) -> int | None:
        """The node scripts/stack reports as the active controller (from its quorum-state)."""
        return next((node for node, (_, active) in self.nodes_up().items() if active), None)

    async def coordinator(self, group: str, timeout: float = 30) -> int:
        """Broker id of the group's coordinator (the first lookup creates __consumer_offsets)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        found: list[int] = []

        async def lookup() -> bool:
            try:
                found.append(await admin.find_coordinator(group))
            except KafkaError:
                return False
            return True

        try:
            await wait_until(lookup, timeout, interval=0.3)
        finally:
            await admin.close()
        return found[-1]

    async def partitions(self, topics: list[str]) -> dict[tuple[str, int], dict[str, object]]:
        """``(topic, partition)`` -> leader, replicas and ISR as the metadata has them."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        return {
            (topic["topic"], part["partition"]): {
                "leader": part["leader"],
                "replicas": sorted(part["replicas"]),
                "isr": sorted(part["isr"]),
            }
            for topic in described
            for part in topic["partitions"]
        }

    async def topic_config(self, topics: list[str], name: str) -> dict[str, str | None]:
        """One configuration value of each topic (as the brokers resolve it)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            resources = [ConfigResource(ConfigResourceType.TOPIC, t, {name: None}) for t in topics]
            responses = await admin.describe_configs(resources)
        finally:
            await admin.close()
        found: dict[str, str | None] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                if resource["error_code"]:  # a broker that does not know the topic yet
                    continue
                values = [e["config_value"] for e in resource["config_entries"]]
                found[resource["resource_name"]] = values[0] if values else None
        return found
