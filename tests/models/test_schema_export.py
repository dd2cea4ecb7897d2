from pathlib import Path

import pytest

from models.schema import SCHEMAS, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_matches_the_model(name: str) -> None:
    committed = (DOCS / f"{name}.schema.json").read_text()
    assert committed == render(name), (
        f"run `creditflow schema` to refresh docs/schemas/{name}.schema.json"
    )


def test_call_event_schema_states_the_contract() -> None:
    import json

    schema = json.loads(render("call-event"))
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"event_id", "account_id", "app_id", "occurred_at", "credits"}
    assert schema["properties"]["account_id"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def test_the_day_record_model_reads_what_the_core_writes() -> None:
    from core.days import Bucket, DayKey, DayUsage, day_record
    from models.usage import DayRecord

    usage = DayUsage(41, {3: Bucket(2, 1_500_000), 95: Bucket(1, 7)})
    record = DayRecord.model_validate_json(
        day_record(DayKey("acme", "bot", 20_000), usage.columns(), 5)
    )
    assert (record.format, record.day, record.version) == (2, "2024-10-04", 41)
    assert (record.calls, record.credits) == (3, "1.500007")
    assert record.slots == [(3, 2, "1.5"), (95, 1, "0.000007")]
