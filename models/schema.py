"""JSON Schemas of the wire formats, exported to ``docs/schemas/`` (kept in sync by a test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.dlq import DlqRecord
from models.events import BatchRecord, CallEvent
from models.usage import DayRecord, UsageAnswer

__all__ = ("SCHEMAS", "render", "write_all")

SCHEMAS: dict[str, Any] = {
    "call-event": CallEvent,
    "batch-record": BatchRecord,
    "dlq-record": DlqRecord,
    "day-record": DayRecord,
    "usage-answer": UsageAnswer,
}


def render(name: str) -> str:
    """The schema document of one model, as committed."""
    schema = SCHEMAS[name].model_json_schema(by_alias=True)
    schema["$id"] = f"https://creditflow.dev/schemas/{name}.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every schema into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name))
        written.append(path)
    return written
