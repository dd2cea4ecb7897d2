"""What both Python SDK drivers share: the step protocol (JSON on stdin, JSON on stdout).

A step is ``{"url", "token", "steps": [...]}``; each step names an action of the driver class
and its arguments. The drivers import only the SDK under test (and the standard library).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any


def _text(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def time_of(text: str | None) -> dt.datetime | None:
    """An RFC 3339 text as the SDK's datetime argument (None stays None)."""
    return None if text is None else dt.datetime.fromisoformat(text)


def error_json(error: Any) -> dict[str, Any]:
    """Status and content type of the SDK's ``HttpResponseError`` (azure-core's or corehttp's)."""
    response = error.response
    return {
        "status": error.status_code,
        "content_type": response.headers.get("content-type") if response else None,
    }


def rows_of(data: list[Any]) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: the value's float repr (exact for these values), times as text."""
    return [
        {
            "value": repr(row["value"]),
            "windowStart": _text(row["windowStart"]),
            "windowEnd": _text(row["windowEnd"]),
            "subject": row.get("subject"),
            "groupBy": dict(row.get("groupBy") or {}),
        }
        for row in data
    ]


def main(driver_class: type) -> int:
    spec = json.load(sys.stdin)
    driver = driver_class(spec["url"], spec["token"])
    results = []
    for step in spec["steps"]:
        outcome = getattr(driver, step["do"])(*step.get("args", []))
        results.append(outcome)
    json.dump(results, sys.stdout, default=_text)
    return 0
