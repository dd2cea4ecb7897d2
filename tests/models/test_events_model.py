"""The pydantic CallEvent states the same contract as the fast validator; they must agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.buckets import to_epoch_ms
from core.events import Event, decode_event
from models.events import BatchRecord, CallEvent, parse_call_event
from tests.core.support import CORPUS, FAST, MISSING, THOROUGH, dumps, event


def _model(raw: bytes) -> CallEvent | None:
    try:
        return parse_call_event(raw)
    except (pydantic.ValidationError, msgspec.DecodeError, ValueError):
        return None


def _assert_agree(raw: bytes) -> bool:
    """Both validators accept or both reject; accepted ones carry the same values."""
    core = decode_event(raw)
    model = _model(raw)
    assert isinstance(core, Event) is (model is not None), (raw[:300], core, model)
    if model is None:
        return False
    assert isinstance(core, Event)
    assert int(Decimal(model.credits).scaleb(6)) == core.micro
    assert model.calls == core.calls
    assert (model.event_id, model.account_id, model.app_id) == (
        core.event_id,
        core.account_id,
        core.app_id,
    )
    assert to_epoch_ms(model.occurred_at) == core.occurred_ms
    return True


# ------------------------------------------------------------------ the model itself


def test_contract_example() -> None:
    parsed = parse_call_event(dumps(event()))
    assert parsed.event_id == "0b6f3c1e-9d4e-4a51-9f0a-2a7c1d1e5b11"
    assert parsed.credits == Decimal("12.5")
    assert isinstance(parsed.credits, Decimal)
    assert parsed.calls == 1
    assert parsed.attributes == {"model": "alli-large"}
    assert parsed.occurred_at == datetime(
        2026, 11, 27, 4, 12, 33, 120_000, tzinfo=timezone(timedelta(hours=9))
    )
    assert parsed.occurred_at.utcoffset() == timedelta(hours=9)


def test_json_numbers_never_become_floats() -> None:
    parsed = parse_call_event(dumps(event(credits="@")).replace(b'"@"', b"0.1"))
    assert parsed.credits == Decimal("0.1")
    artefact = dumps(event(credits="@")).replace(b'"@"', b"0.1000000000000000055511151231257827")
    with pytest.raises(pydantic.ValidationError, match="6 fractional digits"):
        parse_call_event(artefact)


def test_python_floats_are_refused_decimals_and_ints_accepted() -> None:
    with pytest.raises(pydantic.ValidationError, match="binary float"):
        CallEvent.model_validate(event(credits=0.5))
    assert CallEvent.model_validate(event(credits=Decimal("0.5"))).credits == Decimal("0.5")
    assert CallEvent.model_validate(event(credits=2)).credits == Decimal(2)
    with pytest.raises(pydantic.ValidationError, match="boolean"):
        CallEvent.model_validate(event(credits=True))


def test_credits_are_normalised() -> None:
    assert parse_call_event(dumps(event(credits="12.500000"))).credits == Decimal("12.5")
    assert str(parse_call_event(dumps(event(credits="007.250"))).credits) == "7.25"


def test_model_is_frozen_and_strict_about_fields() -> None:
    parsed = parse_call_event(dumps(event()))
    with pytest.raises(pydantic.ValidationError):
        parsed.calls = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        CallEvent.model_validate(event(extra=1))
    with pytest.raises(pydantic.ValidationError):
        CallEvent.model_validate(event(occurred_at=datetime(2026, 11, 27)))  # naive


def test_aware_datetime_objects_are_accepted() -> None:
    moment = datetime(2026, 11, 27, tzinfo=UTC)
    assert CallEvent.model_validate(event(occurred_at=moment)).occurred_at == moment


def test_batch_record_bounds() -> None:
    one = BatchRecord.model_validate([event()])
    assert len(one.root) == 1
    assert (
        len(BatchRecord.model_validate([event(event_id=f"e{i}") for i in range(1000)]).root) == 1000
    )
    with pytest.raises(pydantic.ValidationError):
        BatchRecord.model_validate([])
    with pytest.raises(pydantic.ValidationError):
        BatchRecord.model_validate([event(event_id=f"e{i}") for i in range(1001)])


def test_json_schema_documents_the_contract() -> None:
    schema = CallEvent.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"event_id", "account_id", "app_id", "occurred_at", "credits"}
    properties = schema["properties"]
    assert properties["account_id"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    assert properties["credits"]["pattern"] == r"^[0-9]+(\.[0-9]+)?$"
    assert properties["calls"]["minimum"] == 0
    assert properties["event_id"]["maxLength"] == 128


# ------------------------------------------------------------------ agreement with core.events


@pytest.mark.parametrize(("label", "raw", "valid"), CORPUS, ids=[c[0] for c in CORPUS])
def test_model_and_fast_validator_agree_on_the_corpus(label: str, raw: bytes, valid: bool) -> None:
    assert _assert_agree(raw) is valid, label


@pytest.mark.parametrize(
    "attributes_json",
    [
        '{"k": "v"' + " " * 3000 + "}",
        '{"k": "' + "\\u00e9" * 400 + '"}',
    ],
    ids=["whitespace", "escapes"],
)
def test_attribute_size_is_measured_the_same_way(attributes_json: str) -> None:
    raw = dumps(event(attributes="@")).replace(b'"@"', attributes_json.encode())
    _assert_agree(raw)


def test_overflowing_attribute_number() -> None:
    _assert_agree(dumps(event(attributes="@")).replace(b'"@"', b'{"k": 1e999}'))


# Generated events: a valid base, then zero or more mutations towards the contract's edges.

ids_ok = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
ids_any = ids_ok | st.text(max_size=70)
fraction_digits = st.text(alphabet="0123456789", max_size=9)
credit_texts = st.one_of(
    st.builds(lambda w, f: f"{w}.{f}" if f else str(w), st.integers(0, 2 * 10**9), fraction_digits),
    st.sampled_from(["", "-1", "1e3", "NaN", " 1", "+2", "1.", ".5"]),
)
number_literals = st.one_of(
    credit_texts.filter(lambda t: t and t[0].isdigit() and not t.endswith(".")),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-5, 10**12), st.integers(-12, 12)),
)
offsets = st.sampled_from(["Z", "+00:00", "+09:00", "-03:30", "+05:45", ""])
stamps = st.builds(
    lambda d, off: d.isoformat() + off,
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    offsets,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(alphabet='abc é✓"\\/', max_size=700),
)
attribute_values = st.one_of(
    st.none(),
    st.dictionaries(st.text(alphabet="kéy_", max_size=8), scalars, max_size=6),
    st.dictionaries(st.text(max_size=3), st.lists(scalars, max_size=2), min_size=1, max_size=2),
    st.lists(scalars, max_size=2),
)


@st.composite
def generated_events(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = event(
        event_id=draw(st.text(min_size=1, max_size=128)),
        account_id=draw(ids_ok),
        app_id=draw(ids_ok),
        occurred_at=draw(stamps.filter(lambda s: not s.endswith("T"))),
        calls=draw(st.integers(0, 10**9)),
        attributes=MISSING,
    )
    credits_literal: str | None = None
    if draw(st.booleans()):
        doc["credits"] = draw(credit_texts)
    else:
        doc["credits"] = "@"
        credits_literal = draw(number_literals)
    mutations = draw(
        st.sets(st.sampled_from(["ids", "event_id", "calls", "attrs", "extra", "drop"]))
    )
    if "ids" in mutations:
        doc["account_id"] = draw(ids_any)
        doc["app_id"] = draw(ids_any)
    if "event_id" in mutations:
        doc["event_id"] = draw(st.text(max_size=130) | st.integers())
    if "calls" in mutations:
        doc["calls"] = draw(
            st.integers(-3, 10**9 + 3) | st.sampled_from([None, True, "1", 1.5, 2.0])
        )
    if "attrs" in mutations:
        doc["attributes"] = draw(attribute_values)
    if "extra" in mutations:
        doc["extra"] = 1
    if "drop" in mutations:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if credits_literal is not None:
        raw = raw.replace(b'"@"', credits_literal.encode(), 1)
    return raw


@THOROUGH
@given(generated_events())
def test_model_and_fast_validator_agree_on_generated_events(raw: bytes) -> None:
    _assert_agree(raw)


def test_generator_reaches_both_verdicts() -> None:
    # Guard against a generator that only ever produces one kind of event.
    verdicts: set[bool] = set()

    @FAST
    @given(generated_events())
    def collect(raw: bytes) -> None:
        verdicts.add(isinstance(decode_event(raw), Event))

    collect()
    assert verdicts == {True, False}
