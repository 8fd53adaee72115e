"""The parts report.html is built from: masked phones, a bounded timeline, bounded charts."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from batchcall._charts import TIME_BARS, open_hours, requests_chart
from batchcall._digest import EXAMPLES, digest_for
from batchcall._journal import ReportRow
from batchcall._mask import mask_phone, mask_text
from batchcall._timeline import MAX_BINS, Timeline

NOW = datetime(2030, 3, 4, 1, 0, tzinfo=UTC)  # 12:00 in Sydney


def test_a_masked_phone_keeps_its_country_first_digit_and_last_three():
    assert mask_phone("+61429069971") == "+61 4•• ••• 971"
    assert mask_phone("+14155550167") == "+1 4••-•••-•167"
    assert mask_phone(None) == ""


def test_messages_lose_their_phone_digits_but_keep_dates_and_times():
    said = "Phone '0429 069 971' at 2030-03-04 14:00 is outside 09:00-17:00"
    masked = mask_text(said)
    assert "0429" not in masked and "069" not in masked and "971" in masked
    assert "2030-03-04 14:00" in masked and "09:00-17:00" in masked


def test_the_timeline_stays_bounded_and_counts_every_attempt():
    timeline = Timeline()
    for i in range(100_000):
        timeline.record(1_900_000_000 + i * 0.7, 0.02, 429 if i % 10 == 0 else 201)
    assert len(timeline.bins) <= MAX_BINS
    assert timeline.requests == 100_000
    assert sum(c[1] for c in timeline.bins.values()) == 10_000
    again = Timeline.from_dict(timeline.to_dict())
    assert again.bins == timeline.bins and again.width == timeline.width
    p50 = again.percentile(0.5)
    assert p50 is not None and 0.02 <= p50 <= 0.02 * 1.3


@given(st.lists(st.tuples(st.floats(0, 86_400 * 3), st.sampled_from([201, 429, 500, None]))))
def test_the_requests_chart_draws_every_attempt_in_few_bars(attempts):
    timeline = Timeline()
    for at, status in attempts:
        timeline.record(1_900_000_000 + at, 0.01, status)
    chart = requests_chart(timeline)
    if not attempts:
        assert chart is None
        return
    assert chart is not None and len(chart.rows) <= TIME_BARS
    assert sum(b.value for b in chart.bars) == len(attempts)
    assert all(b.y >= 0 and b.y + b.height <= 150.01 for b in chart.bars)


def _row(n: int, state: str, code: str | None = None, sent: str | None = None) -> ReportRow:
    phone = f"+6141{n:07d}"
    return ReportRow(n, [], state, None, None, None, code, f"bad {phone}", 0, phone, sent, 0)


def test_the_digest_keeps_ten_examples_and_places_calls_in_local_hours():
    digest = digest_for({"settings": {"contact_timezone": "Australia/Sydney"}}, NOW)
    rows = [_row(i, "invalid", "invalid_phone") for i in range(25)]
    rows += [_row(100 + i, "scheduled", sent="2030-03-04T22:30:00Z") for i in range(5)]
    assert list(digest.tee(rows)) == rows
    problem = digest.problems["invalid_phone"]
    assert problem.count == 25 and len(problem.examples) == EXAMPLES
    assert all("+6141" not in message for _, _, message in problem.examples)
    assert digest.hours[9] == 5 and digest.weekdays[1] == 5  # 09:30 on Tuesday in Sydney


def test_a_calling_window_shades_the_hours_it_opens():
    assert open_hours("mon-fri 09:00-12:30") == {9, 10, 11, 12}
    assert open_hours("us-tcpa") == set(range(8, 21))
    assert open_hours(None) == set()


_STATES = ("pending", "scheduled", "invalid", "failed", "unknown", "duplicate", "suppressed")
_CODES = (None, "", "invalid_phone", "duplicate", "timeout", "rejected")
_PHONES = (None, "", "+61412345678", "+61412349999", "+61891234567", "+14155550167", "+1212")
_SENT = (None, "2030-03-04T22:30:00Z", "2030-03-09T05:00:00Z", "2031-01-01T00:00:00+00:00")
_ZONE_CELLS = ("", " ", "Australia/Perth", "Not/AZone", "America/New_York")

_journal_rows = st.lists(
    st.tuples(
        st.sampled_from(_STATES),
        st.sampled_from(_CODES),
        st.sampled_from(_PHONES),
        st.sampled_from(_SENT),
        st.integers(0, 3),
        st.lists(st.sampled_from(_ZONE_CELLS), max_size=3),
    ),
    max_size=40,
)


@given(
    rows=_journal_rows,
    zone_column=st.sampled_from([None, 0, 2]),
    fallback=st.booleans(),
    parts=st.integers(1, 3),
    fold_at=st.sampled_from([1, 2, 5, 20_000]),
)
def test_the_digest_the_writer_children_gather_is_the_digest_row_by_row(
    rows, zone_column, fallback, parts, fold_at
):
    """The digest the report writer's children gather from their ranges of rows (`Tally`),
    merged in order, is exactly what `add` of each row gathers: counts, examples, hours, days,
    moved, unzoned and the last ring."""
    import json
    import tempfile
    from pathlib import Path

    from batchcall._digest import Tally
    from batchcall._journal import Journal, PlannedRow
    from batchcall._writer import ranges

    meta = {
        "settings": {"timezone": "Australia/Sydney"} if fallback else {},
        "timezone_column": zone_column,
    }
    width = 3
    with (
        tempfile.TemporaryDirectory() as where,
        Journal(Path(where) / "j.sqlite", create=True) as journal,
    ):
        planned = [
            PlannedRow(n, json.dumps(cells), None, phone, state, code, f"e{n}", sent, moved)
            for n, (state, code, phone, sent, moved, cells) in enumerate(rows, start=1)
        ]
        journal.add_rows(planned, run_id="r")
        by_row, merged = digest_for(meta, NOW), digest_for(meta, NOW)
        for _ in by_row.tee(journal.report_rows()):
            pass
        for span in ranges(len(rows), parts):
            tally = Tally(width, meta, NOW)
            tally.FOLD_AT = fold_at
            for _ in tally.tee(journal.result_lines(width, dry_run=False, rows=span, moved=True)):
                pass
            merged.merge(tally.digest())
    for name in ("hours", "weekdays", "days", "moved_by_window", "moved_by_cap", "ringing"):
        assert getattr(merged, name) == getattr(by_row, name), name
    assert (merged.unzoned, merged.last_ring) == (by_row.unzoned, by_row.last_ring)
    assert list(merged.problems) == list(by_row.problems)
    assert merged.problems == by_row.problems
