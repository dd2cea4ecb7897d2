"""How many replicas creditflow gives its topics, from the settings and what the cluster reports."""

import pytest

from config.settings import Settings
from config.topics import Replication, replication


@pytest.mark.parametrize(
    ("broker_default", "live_brokers", "expected"),
    [
        (1, 1, Replication(1, 1)),  # the single-node stack
        (3, 3, Replication(3, 2)),  # the three-node stack: RF 3, min ISR 2
        (1, 3, Replication(3, 2)),  # a cluster left at Kafka's default of 1
        (3, 2, Replication(3, 2)),  # a node down at creation: fail loudly, never RF 2 for good
        (1, 2, Replication(2, 1)),
        (1, 5, Replication(3, 2)),  # more brokers than replicas needed
        (5, 5, Replication(5, 2)),
    ],
)
def test_unset_replication_follows_the_cluster(
    broker_default: int, live_brokers: int, expected: Replication
) -> None:
    unset = Settings(replication_factor=None, min_insync_replicas=None)
    assert replication(unset, broker_default, live_brokers) == expected


def test_settings_override_the_cluster() -> None:
    settings = Settings(replication_factor=2, min_insync_replicas=2)
    assert replication(settings, 3, 3) == Replication(2, 2)
    assert replication(Settings(replication_factor=3), 1, 1) == Replication(3, 2)


def test_a_minimum_above_the_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds the replication factor"):
        replication(Settings(replication_factor=1, min_insync_replicas=2), 1, 1)
