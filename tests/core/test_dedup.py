"""Remembered event ids: ``(account_id, event_id)`` with the bucket they fell in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.dedup import SeenIds
from tests.core.support import FAST


def test_add_reports_duplicates() -> None:
    seen = SeenIds()
    assert len(seen) == 0
    assert seen.add("acme", "e1", 900_000) is True
    assert seen.add("acme", "e1", 900_000) is False
    assert seen.add("acme", "e1", 1_800_000) is False  # a duplicate whatever its bucket
    assert len(seen) == 1
    assert ("acme", "e1") in seen
    assert ("acme", "e2") not in seen
    assert ("other", "e1") not in seen


def test_ids_are_per_account() -> None:
    seen = SeenIds()
    assert seen.add("acme", "e1", 0)
    assert seen.add("globex", "e1", 0)  # same event id, other account: a different event
    assert len(seen) == 2
    assert sorted(seen.items()) == [("acme", "e1", 0), ("globex", "e1", 0)]


def test_first_bucket_is_kept_for_a_duplicate() -> None:
    seen = SeenIds()
    seen.add("acme", "e1", 900_000)
    seen.add("acme", "e1", 0)
    assert list(seen.items()) == [("acme", "e1", 900_000)]


def test_forget_before_drops_strictly_older_buckets() -> None:
    seen = SeenIds()
    seen.add("acme", "old", 0)
    seen.add("acme", "edge", 900_000)
    seen.add("acme", "new", 1_800_000)
    seen.add("globex", "old", 0)
    assert seen.forget_before(900_000) == 2
    assert len(seen) == 2
    assert sorted(seen.items()) == [("acme", "edge", 900_000), ("acme", "new", 1_800_000)]
    assert ("globex", "old") not in seen
    # Forgotten ids can be added again (the partition rejects such resends as too late first).
    assert seen.add("acme", "old", 0) is True
    assert seen.forget_before(0) == 0
    assert seen.forget_before(10**12) == 3
    assert len(seen) == 0
    assert list(seen.items()) == []


def test_update_restores_without_double_counting() -> None:
    seen = SeenIds()
    seen.update([("a", "1", 0), ("a", "2", 0), ("a", "1", 0), ("b", "1", 900_000)])
    assert len(seen) == 3
    copy = SeenIds()
    copy.update(seen.items())
    assert sorted(copy.items()) == sorted(seen.items())
    assert len(copy) == 3


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from([f"e{i}" for i in range(8)]),
            st.integers(min_value=0, max_value=6).map(lambda n: n * 900_000),
        ),
        st.tuples(
            st.just("forget"),
            st.just(""),
            st.just(""),
            st.integers(min_value=0, max_value=7).map(lambda n: n * 900_000),
        ),
    ),
    max_size=60,
)


@FAST
@given(operations)
def test_behaves_like_a_plain_dict(ops: list[tuple[str, str, str, int]]) -> None:
    seen = SeenIds()
    model: dict[tuple[str, str], int] = {}
    for op, account, event_id, bucket in ops:
        if op == "add":
            fresh = (account, event_id) not in model
            assert seen.add(account, event_id, bucket) is fresh
            model.setdefault((account, event_id), bucket)
        else:
            stale = [key for key, value in model.items() if value < bucket]
            assert seen.forget_before(bucket) == len(stale)
            for key in stale:
                del model[key]
        assert len(seen) == len(model)
    assert sorted(seen.items()) == sorted((a, e, b) for (a, e), b in model.items())
    for account in "abc":
        for n in range(8):
            assert ((account, f"e{n}") in seen) is ((account, f"e{n}") in model)
