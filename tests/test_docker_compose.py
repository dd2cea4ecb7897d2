"""docker-compose.yml and the Dockerfile agree with the settings, the CLI and scripts/stack.

Docker is not needed: the files are parsed and checked against ``config.settings.Settings``,
``cli.main._parser()`` and the broker configuration that ``scripts/stack`` writes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from cli.main import _parser
from config.settings import AdminTokenError, Settings
from config.topics import Replication, replication

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
STACK_SCRIPT = ROOT / "scripts" / "stack"

SERVICES = {"kafka", "redis", "worker", "api"}
APP_SERVICES = ("worker", "api")
# Read by the application outside Settings (cli/main.py, cli/worker.py).
OTHER_APP_ENV = {"CREDITFLOW_LOG_LEVEL", "CREDITFLOW_TOKEN"}
# server.properties keys of scripts/stack that depend on where Kafka runs, not on its policy.
STACK_LOCATION_KEYS = {
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "log.dirs",
}

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<default>[^}]*)\}")
# What a user must export before `docker compose up` (variables written ${NAME:?message}).
REQUIRED = {"CREDITFLOW_ADMIN_TOKEN": "a-long-random-compose-admin-secret"}


# ------------------------------------------------------------------------------------ helpers
def _interpolate(value: object, given: dict[str, str] = REQUIRED) -> str:
    """A compose value as Compose resolves it with only the ``given`` variables set."""
    text = str(value).lower() if isinstance(value, bool) else str(value)

    def default(match: re.Match[str]) -> str:
        if match["op"] in (":?", "?"):
            if match["name"] not in given:
                raise AssertionError(f"compose refuses to start: {match['default']}")
            return given[match["name"]]
        assert match["op"] in (":-", "-"), f"{match[0]!r} has no default value"
        return match["default"]

    return _VARIABLE.sub(default, text)


def _variables(value: object) -> set[str]:
    return {match["name"] for match in _VARIABLE.finditer(str(value))}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


def _raw_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {name: value for name, value in pairs}
    return {
        name: (str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in environment.items()
    }


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {name: _interpolate(value) for name, value in _raw_env(service).items()}


def _argv(command: object) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"unexpected command {command!r}"
    return [str(part) for part in command]


def _cli(argv: list[str]) -> Any:
    """Parse a container command with the real ``creditflow`` parser."""
    assert argv[:1] == ["creditflow"], f"{argv} does not run the creditflow console script"
    try:
        return _parser().parse_args(argv[1:])
    except SystemExit as error:
        raise AssertionError(f"`{shlex.join(argv)}` is not a valid creditflow command") from error


def _published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port) of a service's published ports."""
    published: dict[int, tuple[str, int]] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            host = _interpolate(entry.get("host_ip", "0.0.0.0"))
            published[int(entry["target"])] = (host, int(_interpolate(entry["published"])))
            continue
        parts = _interpolate(entry).split("/")[0].rsplit(":", 2)
        host = parts[0] if len(parts) == 3 else "0.0.0.0"
        published[int(parts[-1])] = (host, int(parts[-2]) if len(parts) > 1 else int(parts[-1]))
    return published


def _redis_options(service: dict[str, Any]) -> dict[str, str]:
    """``redis-server --name value ...`` -> {"--name": value}."""
    argv = _argv(service.get("command", []))
    return dict(zip(argv[1::2], argv[2::2], strict=False))


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    result = {}
    for item in value.split(","):
        name, address = item.strip().split("://", 1)
        host, port = address.rsplit(":", 1)
        result[name] = (host, int(port))
    return result


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _default(field: str) -> Any:
    return Settings.model_fields[field].default


def _settings_env_names() -> dict[str, str]:
    """Environment variable -> Settings field, as pydantic-settings reads them."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None) if alias is not None else None
        if choices:
            names.update({str(choice).upper(): field for choice in choices})
        elif isinstance(alias, str):
            names[alias.upper()] = field
        else:
            names[f"{prefix}{field}".upper()] = field
    return names


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No settings variables from the surrounding shell (e.g. the stack's own)."""
    for name in _settings_env_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _settings_for(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in _env(service).items():
        monkeypatch.setenv(name, value)
    return Settings()


def _stack_server_properties(brokers: int = 1, node: int = 1) -> dict[str, str]:
    """The server.properties scripts/stack writes for a node (``scripts/stack config``)."""
    service = "kafka" if brokers == 1 else f"kafka{node}"
    env = {"PATH": os.environ["PATH"], "KAFKA_BROKERS": str(brokers)}
    printed = subprocess.run(
        [str(STACK_SCRIPT), "config", service], env=env, capture_output=True, text=True, check=True
    ).stdout
    lines = (line.strip() for line in printed.splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _kafka_env_name(key: str) -> str:
    return "KAFKA_" + key.upper().replace(".", "_")


# ------------------------------------------------------------------------------------ services
def test_the_four_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES


# ------------------------------------------------------------------------------------ kafka
def test_kafka_is_the_official_4x_image(services: dict[str, dict[str, Any]]) -> None:
    image = services["kafka"].get("image", "")
    assert re.fullmatch(r"apache/kafka:4\.\d+(\.\d+)?", image), image


def test_kafka_runs_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert not any(name.startswith("KAFKA_ZOOKEEPER") for name in env)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env.get("CLUSTER_ID"), "the apache/kafka image needs CLUSTER_ID in KRaft mode"

    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1, "single node: one voter"
    voter_id, voter_address = voters[0].split("@")
    assert voter_id == node_id

    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    voter_host, voter_port = _host_port(voter_address)
    assert voter_port == listeners[controller][1]
    assert voter_host in ("kafka", services["kafka"].get("hostname", "kafka"))


def test_kafka_listeners_are_consistent(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )

    assert set(listeners) <= set(protocols)
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_, port) in advertised.items():
        assert listeners[name][1] == port, f"{name} advertises a port it does not listen on"


def test_kafka_is_reachable_from_the_host_at_the_default_address(
    services: dict[str, dict[str, Any]],
) -> None:
    env = _env(services["kafka"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    default_host, default_port = _host_port(_default("kafka_bootstrap_servers"))

    host_listeners = [
        name for name, address in advertised.items() if address == (default_host, default_port)
    ]
    assert host_listeners, f"no listener advertises the default {default_host}:{default_port}"
    published = _published(services["kafka"])
    assert default_port in published, "the host listener's port is not published"
    assert published[default_port][1] == default_port


def test_kafka_broker_policy_matches_scripts_stack(services: dict[str, dict[str, Any]]) -> None:
    """Same broker behaviour as the Docker-free stack (replication 1, no auto-create, ...)."""
    env = _env(services["kafka"])
    expected = {
        _kafka_env_name(key): value
        for key, value in _stack_server_properties().items()
        if key not in STACK_LOCATION_KEYS
    }
    assert "KAFKA_AUTO_CREATE_TOPICS_ENABLE" in expected  # the parse found the real file
    assert {name: env.get(name) for name in expected} == expected


def test_kafka_single_node_settings(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    env = _env(services["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert _default("replication_factor") is None, "derived from the brokers, not fixed"
    topics = replication(Settings(), int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]), 1)
    assert topics == Replication(1, 1)
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "1"


def test_kafka_keeps_its_log_in_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    log_dirs = _env(services["kafka"])["KAFKA_LOG_DIRS"]
    mounts = {
        str(volume).split(":")[1]: str(volume).split(":")[0]
        for volume in services["kafka"].get("volumes", [])
    }
    assert log_dirs in mounts
    assert mounts[log_dirs] in (compose.get("volumes") or {})


# ------------------------------------------------------------------------------------ redis
def test_redis_is_redis7_without_persistence(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-[\w.-]+)?", redis.get("image", "")), redis.get("image")
    assert _argv(redis.get("command", []))[:1] == ["redis-server"]
    options = _redis_options(redis)
    assert options.get("--save") == ""
    assert options.get("--appendonly") == "no"


def test_redis_is_reachable_from_the_host_at_the_default_address(
    services: dict[str, dict[str, Any]],
) -> None:
    default_port = urlsplit(_default("redis_url")).port or 6379
    published = _published(services["redis"])
    assert default_port in published
    assert published[default_port][1] == default_port


# ------------------------------------------------------------------------------------ worker / api
@pytest.mark.parametrize("name", ["kafka", "redis"])
def test_backing_services_have_healthchecks(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    assert healthcheck.get("test")
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_waits_for_healthy_kafka_and_redis(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends_on = services[name].get("depends_on")
    assert isinstance(depends_on, dict), "long depends_on syntax needed for service_healthy"
    for backing in ("kafka", "redis"):
        assert depends_on.get(backing, {}).get("condition") == "service_healthy"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_is_built_from_this_repository(services: dict[str, dict[str, Any]], name: str) -> None:
    build = services[name].get("build")
    context = build.get("context") if isinstance(build, dict) else build
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert context in (".", "./")
    assert dockerfile == DOCKERFILE.name
    assert services[name].get("restart") == "unless-stopped"


def test_worker_and_api_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    image = services["worker"].get("image")
    assert image, "name the built image so both services run the same one"
    assert services["api"].get("image") == image


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_env_names_are_read_by_the_app(services: dict[str, dict[str, Any]], name: str) -> None:
    known = set(_settings_env_names()) | OTHER_APP_ENV
    unknown = set(_raw_env(services[name])) - known
    assert not unknown, f"{name} sets variables creditflow never reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_settings_point_at_the_compose_services(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch, name: str
) -> None:
    settings = _settings_for(services[name], clean_env)
    kafka_env = _env(services["kafka"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    internal = advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]

    assert settings.kafka_bootstrap_servers != _default("kafka_bootstrap_servers")
    for server in settings.kafka_bootstrap_servers.split(","):
        assert _host_port(server) == internal, f"{server} is not Kafka's in-network listener"
        assert internal[0] in ("kafka", services["kafka"].get("hostname"))

    redis = urlsplit(settings.redis_url)
    assert redis.scheme == "redis"
    assert redis.hostname == "redis"
    redis_port = int(_redis_options(services["redis"]).get("--port", 6379))
    assert (redis.port or 6379) == redis_port


def test_worker_and_api_agree_on_partitions(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    worker = _settings_for(services["worker"], clean_env)
    api = _settings_for(services["api"], clean_env)
    assert worker.partitions == api.partitions == _default("partitions")
    assert _raw_env(services["worker"]).get("CREDITFLOW_PARTITIONS") == _raw_env(
        services["api"]
    ).get("CREDITFLOW_PARTITIONS")


def test_workers_keep_their_local_state_in_a_volume_of_their_own(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    worker = services["worker"]
    data_dir = str(_settings_for(worker, clean_env).data_dir)
    # Anonymous (container-scoped), not a named volume: replicas must not share one store.
    assert data_dir in worker.get("volumes", []), "the worker's data dir is a volume"
    assert all(":" not in str(volume) for volume in worker.get("volumes", []))


def test_worker_command(services: dict[str, dict[str, Any]]) -> None:
    args = _cli(_argv(services["worker"].get("command")))
    assert args.command == "worker"
    assert not services["worker"].get("ports"), "workers scale out; they publish no ports"


def test_api_command_and_port(services: dict[str, dict[str, Any]]) -> None:
    args = _cli(_argv(services["api"].get("command")))
    api_port = _default("api_port")
    assert args.command == "api"
    assert args.host == "0.0.0.0"  # inside the container
    assert (args.port or api_port) == api_port
    published = _published(services["api"])
    assert api_port in published, "the API's port is not published"
    assert published[api_port][1] == api_port


def test_finding_06_compose_api_needs_an_admin_token(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    """The API binds 0.0.0.0 in its container: no fallback to the public dev token there."""
    raw = _raw_env(services["api"])["CREDITFLOW_ADMIN_TOKEN"]
    assert _variables(raw) == {"CREDITFLOW_ADMIN_TOKEN"}, "the token must come from the user"
    with pytest.raises(AssertionError, match="CREDITFLOW_ADMIN_TOKEN"):
        _interpolate(raw, given={})
    settings = _settings_for(services["api"], clean_env)
    host = _cli(_argv(services["api"]["command"])).host
    assert settings.admin_token_for(host) == REQUIRED["CREDITFLOW_ADMIN_TOKEN"]
    assert "CREDITFLOW_ADMIN_TOKEN" not in _raw_env(services["worker"])


# ------------------------------------------------------------------------------------ image
def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_base_image_is_python_311() -> None:
    bases = [rest.split()[0] for keyword, rest in _dockerfile_instructions() if keyword == "FROM"]
    assert bases, "no FROM"
    assert re.fullmatch(r"python:3\.11(\.\d+)?(-slim(-\w+)?)?", bases[-1]), bases[-1]


def test_dockerfile_installs_the_project_without_dev_extras() -> None:
    runs = [rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN"]
    installs = [run for run in runs if re.search(r"\bpip install\b[^&;|]*\s\.(\s|$|&|;)", run)]
    assert installs, "no `pip install .`"
    assert not any("[dev]" in run or "-e " in run for run in runs)
    copies = [rest for keyword, rest in _dockerfile_instructions() if keyword == "COPY"]
    assert any(copy.split()[0] == "." for copy in copies), "the project is not copied in"


def test_dockerfile_runs_as_non_root_and_serves_the_api() -> None:
    instructions = _dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    commands = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert commands, "no CMD"
    argv = json.loads(commands[-1])
    args = _cli(argv)
    assert args.command == "api"
    assert args.host == "0.0.0.0"  # inside the container


def test_finding_06_image_refuses_to_start_without_an_admin_token(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """DESIGN.md section 5: the Docker image has no admin token unless it is given one."""
    commands = [rest for keyword, rest in _dockerfile_instructions() if keyword == "CMD"]
    host = _cli(json.loads(commands[-1])).host
    with pytest.raises(AdminTokenError, match="CREDITFLOW_ADMIN_TOKEN"):
        Settings().admin_token_for(host)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".local", ".venv"} <= ignored


# ------------------------------------------------------------------------------------ cluster
# docker-compose.cluster.yml, layered on docker-compose.yml as `docker compose -f ... -f ...` does.
KAFKA_NODES = {"kafka": 1, "kafka2": 2, "kafka3": 3}


def _compose_merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of an override file: mappings by key, ports appended, volumes by target."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _compose_merge(base[name], value, name) if name in base else value
        return merged
    if key == "ports" and isinstance(base, list) and isinstance(override, list):
        return base + [entry for entry in override if entry not in base]
    if key == "volumes" and isinstance(base, list) and isinstance(override, list):
        by_target = {str(entry).split(":")[1]: entry for entry in base}
        by_target.update({str(entry).split(":")[1]: entry for entry in override})
        return list(by_target.values())
    return override


@pytest.fixture(scope="module")
def cluster(compose: dict[str, Any]) -> dict[str, Any]:
    override = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))
    assert isinstance(override, dict)
    merged = _compose_merge(compose, override)
    assert isinstance(merged, dict)
    return merged


@pytest.fixture(scope="module")
def cluster_services(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = cluster.get("services")
    assert isinstance(found, dict)
    return found


def test_cluster_runs_three_kraft_nodes_with_one_static_quorum(
    cluster_services: dict[str, dict[str, Any]],
) -> None:
    envs = {name: _env(cluster_services[name]) for name in KAFKA_NODES}
    assert {env["KAFKA_NODE_ID"] for env in envs.values()} == {"1", "2", "3"}
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    assert len({env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}) == 1
    voters = dict(
        voter.split("@") for voter in envs["kafka"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    )
    assert set(voters) == {"1", "2", "3"}
    for name, env in envs.items():
        service = cluster_services[name]
        assert re.fullmatch(r"apache/kafka:4\.\d+(\.\d+)?", service.get("image", ""))
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS" not in env
        listeners = _listeners(env["KAFKA_LISTENERS"])
        host, port = _host_port(voters[env["KAFKA_NODE_ID"]])
        assert host == service.get("hostname", name)
        assert port == listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]][1]


@pytest.mark.parametrize("name", KAFKA_NODES)
def test_cluster_node_listeners_are_consistent(
    cluster_services: dict[str, dict[str, Any]], name: str
) -> None:
    service = cluster_services[name]
    env = _env(service)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    internal = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert internal[0] == service.get("hostname", name)
    published = _published(service)
    for listener, (host, port) in advertised.items():
        assert listeners[listener][1] == port
        if host == "127.0.0.1":  # the host's listener must be published on that port
            assert published.get(port) == ("127.0.0.1", port), f"{name}: {listener}"


@pytest.mark.parametrize("name", KAFKA_NODES)
def test_cluster_broker_policy_matches_scripts_stack(
    cluster_services: dict[str, dict[str, Any]], name: str
) -> None:
    """Each node's policy is what `KAFKA_BROKERS=3 scripts/stack` writes for that node."""
    env = _env(cluster_services[name])
    expected = {
        _kafka_env_name(key): value
        for key, value in _stack_server_properties(3, KAFKA_NODES[name]).items()
        if key not in STACK_LOCATION_KEYS
    }
    assert expected["KAFKA_MIN_INSYNC_REPLICAS"] == "2"  # the parse found the cluster's file
    assert {key: env.get(key) for key in expected} == expected


def test_cluster_nodes_keep_their_logs_in_volumes_of_their_own(
    cluster: dict[str, Any], cluster_services: dict[str, dict[str, Any]]
) -> None:
    volumes = []
    for name in KAFKA_NODES:
        service = cluster_services[name]
        log_dirs = _env(service)["KAFKA_LOG_DIRS"]
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}
        assert log_dirs in mounts, name
        volumes.append(mounts[log_dirs])
    assert len(set(volumes)) == 3
    assert set(volumes) <= set(cluster.get("volumes") or {})
    assert "kafka-data" not in volumes, "node 1 must not start on the single node's data"


def test_cluster_topics_get_three_replicas_and_min_isr_two(
    cluster_services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    settings = _settings_for(cluster_services["worker"], clean_env)
    env = _env(cluster_services["kafka"])
    topics = replication(settings, int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]), len(KAFKA_NODES))
    assert topics == Replication(3, 2)
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == str(topics.min_insync)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_cluster_app_uses_every_node_once_all_are_healthy(
    cluster_services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch, name: str
) -> None:
    settings = _settings_for(cluster_services[name], clean_env)
    internal = set()
    for node in KAFKA_NODES:
        env = _env(cluster_services[node])
        internal.add(
            _listeners(env["KAFKA_ADVERTISED_LISTENERS"])[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        )
    servers = settings.kafka_bootstrap_servers.split(",")
    assert {_host_port(server) for server in servers} == internal
    assert len(servers) == len(KAFKA_NODES)
    depends_on = cluster_services[name]["depends_on"]
    for backing in (*KAFKA_NODES, "redis"):
        assert depends_on.get(backing, {}).get("condition") == "service_healthy", backing
    for node in KAFKA_NODES:
        assert cluster_services[node].get("healthcheck", {}).get("test"), node
