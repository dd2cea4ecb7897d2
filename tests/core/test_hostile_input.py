"""Hostile input of issue 9 (findings 2, 4 and 12), broker-free: bounded messages, deep nesting,
repeated keys. Each batch item is judged on its own, whatever the other items hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import Event, Reason, Rejection, decode_body, decode_event
from core.jsontext import repeated_key, split_array
from core.money import CreditsError, micro_from_json_number, micro_from_text
from tests.core.support import FAST, MISSING, dumps, event

LIMIT = 1024 * 1024


def _obj(pairs: list[tuple[str, Any]], raw_keys: bool = False) -> bytes:
    """A JSON object from pairs, in order, repeated keys kept (``raw_keys``: keys as written)."""
    return (
        "{"
        + ",".join(
            f"{key if raw_keys else json.dumps(key)}:{json.dumps(value)}" for key, value in pairs
        )
        + "}"
    ).encode()


def _batch(*items: bytes) -> bytes:
    return b"[" + b",".join(items) + b"]"


def _outcomes(value: bytes) -> list[Event | Rejection]:
    body = decode_body(value, LIMIT)
    assert isinstance(body, list), body
    return body


def _plain(**fields: Any) -> dict[str, Any]:
    """A valid event of the fast path's shape (string credits, no attributes)."""
    return event(attributes=MISSING, **fields)


# ---------------------------------------------------------------- finding 2: bounded details


def test_finding_02_rejection_details_quote_a_bounded_excerpt() -> None:
    huge = "\U0010ffff" * 250_000  # the input: a record under 1 MiB
    (outcome,) = _outcomes(dumps(_plain(credits=huge)))
    assert isinstance(outcome, Rejection) and outcome.reason is Reason.INVALID_EVENT
    assert outcome.detail.startswith("credits: credits must be a plain decimal string")
    assert "250000 characters" in outcome.detail
    assert len(outcome.detail) < 1_000

    unknown = decode_event(dumps(_plain(**{"x" * 100_000: 1})))
    assert isinstance(unknown, Rejection) and "unknown field" in unknown.detail
    assert len(unknown.detail) < 1_000

    for parse, text in (
        (micro_from_text, "9" * 10**6 + "x"),
        (micro_from_json_number, "-" * 10**6),
    ):
        with pytest.raises(CreditsError) as error:
            parse(text)
        assert len(str(error.value)) < 200


# ---------------------------------------------------------------- finding 4: deep nesting


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _deep_item(depth: int, field: str = "attributes") -> bytes:
    valid = dumps(_plain(event_id="deep"))
    return valid[:-1] + f',"{field}":{_deep(depth)}}}'.encode()


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_finding_04_a_deeply_nested_item_rejects_only_itself(depth: int) -> None:
    valid, deep = dumps(_plain(event_id="ok")), _deep_item(depth)
    first, second = _outcomes(_batch(valid, deep))
    assert isinstance(first, Event) and first.event_id == "ok" and first.raw == valid
    assert isinstance(second, Rejection) and second.reason is Reason.INVALID_EVENT
    assert second.index == 1 and second.raw == deep

    # In any position, inside any field, and as a record of one event.
    rejected, accepted = _outcomes(_batch(_deep_item(depth, "credits"), valid))
    assert isinstance(rejected, Rejection) and rejected.index == 0
    assert isinstance(accepted, Event) and accepted.raw == valid
    (alone,) = _outcomes(deep)
    assert isinstance(alone, Rejection) and alone.reason is Reason.INVALID_EVENT


def test_finding_04_deep_arrays_and_broken_records_are_still_judged() -> None:
    nested = b"[" * 5_000 + b"]" * 5_000
    (item,) = _outcomes(_batch(nested))
    assert isinstance(item, Rejection) and item.detail == "each batch item must be a JSON object"
    broken = decode_body(b"[" + _deep_item(2_000) + b",", LIMIT)
    assert isinstance(broken, Rejection) and broken.reason is Reason.INVALID_JSON
    trailing = decode_body(b"{}" + b"[" * 5_000, LIMIT)
    assert isinstance(trailing, Rejection) or not any(isinstance(o, Event) for o in trailing)


def test_split_array_finds_items_as_msgspec_does() -> None:
    value = b' [ {"a":"x,]}\\"",  "b":[1,{"c":2}]} , 3,"s" ] '
    assert split_array(value) == [b'{"a":"x,]}\\"",  "b":[1,{"c":2}]}', b"3", b'"s"']
    assert split_array(b"[]") == []
    for bad in (b"[1,]", b"[1", b"[1] 2", b"x[1]", b"{}", b"[,1]"):
        assert split_array(bad) is None, bad


# ---------------------------------------------------------------- finding 12: repeated keys

_EVIL = [
    ("account_id", "acme"),
    ("event_id", "e1"),
    ("app_id", "bot"),
    ("occurred_at", "2026-11-27T04:12:33.120+09:00"),
    ("credits", "1"),
    ("account_id", "evil"),
]


def test_finding_12_a_repeated_key_is_a_duplicate_key_rejection() -> None:
    (outcome,) = _outcomes(_obj(_EVIL))
    assert isinstance(outcome, Rejection) and outcome.reason is Reason.DUPLICATE_KEY
    assert "'account_id'" in outcome.detail


@pytest.mark.parametrize(
    "item",
    [
        _obj(_EVIL),
        # Spelled with an escape: the same key once decoded.
        _obj(
            [
                (json.dumps(k) if i < 5 else '"account\\u005fid"', v)
                for i, (k, v) in enumerate(_EVIL)
            ],
            True,
        ),
        # An optional key twice, in a batch whose other event leaves it out (same comma count).
        _obj([*_EVIL[:5], ("calls", 1), ("calls", 500)]),
        # Commas in the event id (the cheap test cannot decide; the exact one does).
        _obj([("event_id", "a,b,c"), _EVIL[0], *_EVIL[2:]]),
        # Inside attributes.
        _obj([*_EVIL[:5], ("attributes", {"m": 1})])[:-2] + b',"m":2}}',
        # Whitespace everywhere, a JSON-number credits: the strict path.
        _obj(_EVIL).replace(b'":', b'" : ').replace(b'"1"', b"1"),
    ],
    ids=["plain", "escaped", "optional", "commas-in-id", "attributes", "strict-path"],
)
def test_finding_12_repeated_keys_rejected_in_any_spelling(item: bytes) -> None:
    other = dumps(_plain(event_id="other", calls=MISSING))
    outcomes = _outcomes(_batch(other, item))
    assert isinstance(outcomes[0], Event)
    assert isinstance(outcomes[1], Rejection) and outcomes[1].reason is Reason.DUPLICATE_KEY
    assert outcomes[1].index == 1 and outcomes[1].raw == item
    (alone,) = _outcomes(item)
    assert isinstance(alone, Rejection) and alone.reason is Reason.DUPLICATE_KEY


def test_values_that_look_like_keys_or_hold_commas_are_fine() -> None:
    tricky = [
        _plain(event_id="a,b", app_id="account_id"),
        _plain(event_id="c", app_id="credits", calls=MISSING),
        event(event_id="d", attributes={"note": "x,y", "credits": "z"}),
        _plain(event_id='say "account_id":1,'),
    ]
    for outcome in _outcomes(_batch(*(dumps(item) for item in tricky))):
        assert isinstance(outcome, Event), outcome


def test_repeated_key_compares_decoded_keys_at_any_depth() -> None:
    assert repeated_key(b'{"a":{"b":1,"\\u0062":2}}') == "b"
    assert repeated_key(b'[{"a":1},{"a":2}]') is None
    assert repeated_key(b'{"a":1e999999,"b":' + b"9" * 5_000 + b"}") is None
    assert repeated_key(b"not json") is None


_FIELDS = ["event_id", "account_id", "app_id", "occurred_at", "credits", "calls", "attributes"]


@FAST
@given(
    shapes=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.sampled_from(["e", "e,1", "e,,"])),
        min_size=1,
        max_size=8,
    ),
    victim=st.integers(min_value=0),
    field=st.sampled_from(_FIELDS),
    spaced=st.booleans(),
)
def test_generated_batches_count_every_event_unless_it_repeats_a_key(
    shapes: list[tuple[bool, bool, str]], victim: int, field: str, spaced: bool
) -> None:
    docs = []
    for n, (with_calls, with_attributes, event_id) in enumerate(shapes):
        doc = event(event_id=f"{event_id}{n}", calls=1 if with_calls else MISSING)
        if not with_attributes:
            del doc["attributes"]
        docs.append(list(doc.items()))
    encode = (lambda raw: raw.replace(b'":', b'" : ').replace(b",", b" , ")) if spaced else bytes
    clean = _batch(*(encode(_obj(pairs)) for pairs in docs))
    assert all(isinstance(o, Event) for o in _outcomes(clean))

    target = victim % len(docs)
    present = dict(docs[target])
    value = present.get(field, {"k": 1} if field == "attributes" else 1)
    docs[target] += [(field, value)] * (1 if field in present else 2)
    outcomes = _outcomes(_batch(*(encode(_obj(pairs)) for pairs in docs)))
    for n, outcome in enumerate(outcomes):
        if n == target:
            assert isinstance(outcome, Rejection) and outcome.reason is Reason.DUPLICATE_KEY
        else:
            assert isinstance(outcome, Event)
