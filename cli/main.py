"""The ``creditflow`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from config.settings import DEV_ADMIN_TOKEN, AdminTokenError, get_settings

__all__ = ("main",)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _worker(_: argparse.Namespace) -> int:
    from cli.worker import run_worker

    return run_worker(get_settings())


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or get_settings().api_host
    # The app factory (in this process or uvicorn's workers) reads the bind host from the
    # environment, so it checks the admin token against the address actually served.
    os.environ["CREDITFLOW_API_HOST"] = host
    get_settings.cache_clear()
    settings = get_settings()
    try:
        settings.admin_token_for(host)
    except AdminTokenError as error:
        print(f"creditflow api: refusing to start: {error}", file=sys.stderr)
        return 2
    if settings.admin_token is None:
        print(
            f"creditflow api: CREDITFLOW_ADMIN_TOKEN is unset; dev admin token: {DEV_ADMIN_TOKEN}"
        )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=args.port or settings.api_port,
        workers=args.workers,
        log_level=os.environ.get("CREDITFLOW_LOG_LEVEL", "warning").lower(),
        access_log=False,
    )
    return 0


def _publish(args: argparse.Namespace) -> int:
    from cli.publish import publish_lines

    stream = open(args.file, "rb") if args.file != "-" else sys.stdin.buffer  # noqa: SIM115
    with stream:
        sent = asyncio.run(publish_lines(get_settings(), stream))
    print(f"published {sent} records to {get_settings().calls_topic}")
    return 0


def _dlq(args: argparse.Namespace) -> int:
    from cli import dlq

    settings = get_settings()
    if args.dlq_command == "list":
        return asyncio.run(dlq.list_command(settings, args.reason, args.limit, args.json))
    return asyncio.run(dlq.redrive_command(settings, args.reason, args.id, args.dry_run))


def _top(args: argparse.Namespace) -> int:
    from cli.top import run_top

    return asyncio.run(run_top(args.account, args.api, args.token, args.tz, args.once))


def _loadgen(args: argparse.Namespace) -> int:
    from cli.loadgen import LoadSpec, run_loadgen

    spec = LoadSpec(
        rate=args.rate,
        duration=args.duration,
        accounts=args.accounts.split(","),
        apps=args.apps,
        batch=args.batch,
        late_fraction=args.late,
        duplicate_fraction=args.duplicates,
    )
    sent = asyncio.run(run_loadgen(get_settings(), spec))
    print(f"loadgen: sent {sent} events")
    return 0


def _token(args: argparse.Namespace) -> int:
    from api.auth import hash_token

    print(hash_token(args.token))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from models.schema import write_all

    for path in write_all(Path(args.directory)):
        print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditflow", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("CREDITFLOW_LOG_LEVEL", "info"))
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("worker", help="run a stream worker").set_defaults(run=_worker)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(run=_api)

    publish = commands.add_parser("publish", help="publish JSON lines (an event or an array each)")
    publish.add_argument("file", nargs="?", default="-", help="file of JSON lines, - for stdin")
    publish.set_defaults(run=_publish)

    dlq = commands.add_parser("dlq", help="inspect or re-drive the dead-letter queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_commands.add_parser("list", help="list dead-lettered events")
    listing.add_argument("--reason")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON record per line")
    redrive = dlq_commands.add_parser("redrive", help="publish dead-lettered events again")
    redrive.add_argument("--reason")
    redrive.add_argument("--id", action="append", help="dlq_id to re-drive (repeatable)")
    redrive.add_argument("--dry-run", action="store_true")
    dlq.set_defaults(run=_dlq)

    top = commands.add_parser("top", help="live per-app usage of an account in the terminal")
    top.add_argument("account")
    top.add_argument("--api", default=None, help="API base URL (default: local API)")
    top.add_argument("--token", default=os.environ.get("CREDITFLOW_TOKEN"))
    top.add_argument("--tz", default=None)
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.set_defaults(run=_top)

    load = commands.add_parser("loadgen", help="generate call events")
    load.add_argument("--rate", type=float, default=200.0, help="events per second")
    load.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until stopped")
    load.add_argument("--accounts", default="acme,globex,initech")
    load.add_argument("--apps", type=int, default=4)
    load.add_argument("--batch", type=int, default=1, help="events per record (1 = single)")
    load.add_argument("--late", type=float, default=0.0, help="fraction of late events")
    load.add_argument("--duplicates", type=float, default=0.0, help="fraction of resent events")
    load.set_defaults(run=_loadgen)

    schema = commands.add_parser("schema", help="export the JSON Schemas of the wire formats")
    schema.add_argument("directory", nargs="?", default="docs/schemas")
    schema.set_defaults(run=_schema)

    # Listed for --help; main() hands its arguments to bench.run untouched.
    commands.add_parser("bench", help="run the benchmark (see bench/run.py; needs the bench extra)")

    token = commands.add_parser("token", help="token utilities")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    hashing = token_commands.add_parser("hash", help="print the SHA-256 of a token")
    hashing.add_argument("token")
    token.set_defaults(run=_token)
    return parser


def _bench(argv: list[str]) -> int:
    """Run ``bench.run`` of the checkout this command was installed from (editable install).

    ``bench`` is not an installed package: it drives the checkout's stack script, baselines and
    result folders, so it only exists where the checkout does.
    """
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "bench" / "run.py").is_file():
        print(
            "creditflow bench runs from a source checkout (git clone, then make bench): "
            "the benchmark is not part of the installed package",
            file=sys.stderr,
        )
        return 2
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    bench_run = importlib.import_module("bench.run")
    result: int = bench_run.main(argv)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``creditflow`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = _parser().parse_args(argv)
    _logging(args.log_level)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
