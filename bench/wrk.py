"""wrk, the HTTP load generator: where it is and the figures of its ``--latency`` report."""

from __future__ import annotations

import re
import shutil

__all__ = ("binary", "command", "max_ms", "non_2xx", "percentiles", "requests", "socket_errors")


def binary() -> str:
    """The path of ``wrk``; a clear error when it is not installed."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return found


def command(clients: int, seconds: int, *args: str) -> list[str]:
    """wrk's command line: two threads, ``clients`` connections, ``seconds`` long, latencies."""
    return [binary(), "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", *args]


def _ms(value: str, unit: str) -> float:
    number = float(value)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


def _percentile_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {label} in wrk output:\n{text}")
    return _ms(match.group(1), match.group(2))


def percentiles(text: str) -> dict[str, float]:
    """``p50_ms``, ``p90_ms`` and ``p99_ms`` of the latency distribution."""
    return {f"p{n}_ms": _percentile_ms(text, f"{n}%") for n in (50, 90, 99)}


def max_ms(text: str) -> float:
    """The max of wrk's "Latency avg stdev max" line."""
    match = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no latency line in wrk output:\n{text}")
    return _ms(match.group(1), match.group(2))


def requests(text: str) -> int:
    """How many requests completed."""
    return int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]


def non_2xx(text: str) -> int:
    """How many answers were not 2xx or 3xx."""
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return int(match.group(1)) if match else 0


def socket_errors(text: str) -> int:
    """Connect, read, write and timeout errors together."""
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return sum(int(n) for n in match.groups()) if match else 0
