"""An isolated set of topics, consumer groups and a Redis database for one benchmark run."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STATE = RESULTS / "state"
"""Local stores of benchmark workers, one directory per namespace."""


@dataclass
class Namespace:
    """Environment variables that point creditflow at fresh topics and a Redis database."""

    label: str
    redis_db: int = 13
    partitions: int = 8
    extra: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    attempt: int = 0
    """A retried subject reads the same input topic into fresh groups and output topics."""

    @property
    def prefix(self) -> str:
        return f"bench-{self.label}-{self.tag}."

    @property
    def env(self) -> dict[str, str]:
        prefix = self.prefix
        out = prefix if not self.attempt else f"{prefix}retry{self.attempt}."
        return {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
            + f"/{self.redis_db}",
            "CREDITFLOW_GROUP_ID": out + "workers",
            "CREDITFLOW_PARTITIONS": str(self.partitions),
            "CREDITFLOW_CALLS_TOPIC": prefix + "calls",
            "CREDITFLOW_DLQ_TOPIC": out + "dlq",
            "CREDITFLOW_BUCKETS_TOPIC": out + "buckets",
            "CREDITFLOW_ALERTS_TOPIC": out + "alerts",
            "CREDITFLOW_STATE_TOPIC": out + "state",
            "CREDITFLOW_CONFIG_TOPIC": out + "config",
            "CREDITFLOW_DELIVERIES_TOPIC": out + "deliveries",
            "CREDITFLOW_ADMIN_TOKEN": "bench-admin-token",
            "CREDITFLOW_LOG_LEVEL": "warning",
            # Workers' local stores with the other benchmark artefacts (`creditflow bench`
            # clears them when it starts), not in the working directory.
            "CREDITFLOW_DATA_DIR": str(STATE / self.tag),
            **self.extra,
        }

    def settings(self) -> Settings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.env)
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def retry(self) -> Namespace:
        """The same input topic, with fresh groups and output topics, for another try."""
        return Namespace(
            self.label, self.redis_db, self.partitions, dict(self.extra), self.tag, self.attempt + 1
        )

    def flush_redis(self) -> None:
        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()


class Process:
    """A subprocess with its own log under bench/results/logs."""

    def __init__(self, args: list[str], namespace: Namespace, name: str) -> None:
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / f"{namespace.label}-{namespace.tag}-{name}.log"
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **namespace.env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_bytes(self) -> int:
        """VmHWM of the process (its peak resident set)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def last_line(self) -> str:
        """The last line the process logged (cut), to say why it failed."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line]
        return lines[-1][:200] if lines else f"nothing logged; see {self.log}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def cpu_seconds(stat: Path) -> float:
    """User and system CPU so far of the process or thread whose ``/proc/.../stat`` this is."""
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def creditflow(*args: str) -> list[str]:
    """Command line of the project's own CLI."""
    return [str(ROOT / ".venv" / "bin" / "creditflow"), *args]


def python_module(module: str, *args: str) -> list[str]:
    """Command line running a module with the project's interpreter."""
    return [str(ROOT / ".venv" / "bin" / "python"), "-m", module, *args]


def wait_for(check: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll a callable until it returns true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False
