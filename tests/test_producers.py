"""Every Kafka producer of the project waits for all in-sync replicas and is idempotent.

On a cluster, ``acks=1`` confirms a write only the partition leader holds (kill -9 of that leader
loses it), and a producer without idempotence can write a retried batch twice. The check reads the
source, so a new producer anywhere in the shipped code or the benchmarks is held to it too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from config.settings import Settings
from streams.app import create_app

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "api", "cli", "bench", "view", "config", "core", "models")


def _producer_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", None))
                    if name == "AIOKafkaProducer":
                        calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value)
    return None


CALLS = _producer_calls()


def test_the_source_has_producers_to_check() -> None:
    assert len(CALLS) >= 8


@pytest.mark.parametrize(("where", "call"), CALLS, ids=[where for where, _ in CALLS])
def test_producer_uses_acks_all_and_idempotence(where: str, call: ast.Call) -> None:
    assert _keyword(call, "acks") == "all", f"{where}: acks must be 'all'"
    assert _keyword(call, "enable_idempotence") is True, f"{where}: enable_idempotence=True"


def test_faust_producer_waits_for_all_replicas_and_does_not_hang(tmp_path: Path) -> None:
    app, _ = create_app(Settings(kafka_request_timeout_seconds=12.5, data_dir=tmp_path))
    assert app.conf.producer_acks == -1
    assert app.conf.producer_request_timeout == 12.5
    assert app.conf.broker_request_timeout >= app.conf.broker_session_timeout


def test_faust_keeps_its_directory_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust's default is "<app id>-data" in the working directory: every worker, test and
    # benchmark run left one behind there.
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=tmp_path / "state", group_id="g-{1}")
    app, _ = create_app(settings)
    assert Path(app.conf.datadir) == tmp_path / "state" / "g-{1}" / "faust"
    assert Path(app.conf.datadir).is_dir()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]
