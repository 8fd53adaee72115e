"""Planning: repeats of one call are marked duplicate before anything is sent."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from batchcall._models import Checked, Contact, CreatePhoneCallRequest
from batchcall._plan import plan

SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def row(n: int, phone: str, when: str | None = None, script: str = SCRIPT) -> Checked:
    request = CreatePhoneCallRequest(
        from_number="+61291234567",
        script_id=script,
        contact=Contact(phone_number=phone),
        scheduled_time=when,
    )
    return Checked(row=n, cells=(phone,), request=request, phone_e164=phone)


def test_repeat_of_phone_script_and_time_is_a_duplicate_naming_the_first_row() -> None:
    """The second row for the same person, script and time is skipped and points at row 1."""
    out = list(
        plan(
            [
                row(1, "+61429069971", "2030-03-02T09:00:00Z"),
                row(2, "+61429069971", "2030-03-02T09:00:00Z"),
            ],
            allow_duplicates=False,
        )
    )
    assert [c.outcome for c in out] == ["pending", "duplicate"]
    assert out[1].error_code == "duplicate"
    assert "row 1" in (out[1].error or "") and "--allow-duplicates" in (out[1].error or "")


def test_different_time_or_script_is_not_a_duplicate() -> None:
    """The same phone at another time, or with another script, is a separate call."""
    rows = [
        row(1, "+61429069971", "2030-03-02T09:00:00Z"),
        row(2, "+61429069971", "2030-03-03T09:00:00Z"),
        row(3, "+61429069971", "2030-03-02T09:00:00Z", script="other"),
        row(4, "+61429069971", None),
    ]
    assert [c.outcome for c in plan(rows, allow_duplicates=False)] == ["pending"] * 4


def test_two_rows_with_no_time_are_the_same_call() -> None:
    """Two rows that both say 'call now' for one person are one call."""
    out = list(plan([row(1, "+61429069971"), row(5, "+61429069971")], allow_duplicates=False))
    assert [c.outcome for c in out] == ["pending", "duplicate"]


def test_allow_duplicates_sends_every_row() -> None:
    """--allow-duplicates lets repeats through unchanged."""
    rows = [row(1, "+61429069971"), row(2, "+61429069971")]
    assert list(plan(rows, allow_duplicates=True)) == rows


def test_invalid_rows_are_passed_through_and_never_count_as_the_first() -> None:
    """An invalid row is not a call, so a later valid row for that phone is still sent."""
    bad = Checked(row=1, cells=("x",), outcome="invalid", error_code="invalid_phone", error="e")
    out = list(plan([bad, row(2, "+61429069971")], allow_duplicates=False))
    assert out[0] is bad
    assert out[1].outcome == "pending"


def test_planning_streams_and_keeps_little_per_row() -> None:
    """Rows come out as they go in, and 100,000 distinct calls hold only a few MB of state."""

    def rows() -> Iterator[Checked]:
        request = row(0, "+61400000000").request
        assert request is not None
        for n in range(100_000):
            phone = f"+614{n:08d}"
            yield Checked(row=n + 1, cells=(), request=request, phone_e164=phone)

    tracemalloc.start()
    try:
        seen = sum(1 for c in plan(rows(), allow_duplicates=False) if c.outcome == "pending")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 100_000
    assert peak < 20 * 1024 * 1024
