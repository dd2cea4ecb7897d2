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
