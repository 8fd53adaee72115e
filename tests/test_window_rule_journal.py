"""results.csv's `window_rule` as the journal keeps it: the window's rule, a cap's after it, and
a cap's part undone when the deferral the plan expected does not happen."""

from __future__ import annotations

from batchcall._journal import MOVED_BY_CAP, MOVED_BY_WINDOW, Journal, PlannedRow

HOURS = "FL: daily 08:00-20:00 (Fla. Stat. 501.616(6))"
CAP = "cap 3/24h: 3 calls since 2031-03-04T14:00:00Z (FL: at most 3 calls in any 24 h)"


def _rule(journal: Journal, n: int) -> str | None:
    return next(r.window_rule for r in journal.report_rows() if r.row == n)


def test_a_cap_follows_the_window_rule_and_is_undone_alone(tmp_path):
    with Journal(tmp_path / "j.sqlite", create=True) as journal:
        request = '{"from_number":"+1","script_id":"s","contact":{"phone_number":"+1"}}'
        journal.add_rows(
            [
                PlannedRow(1, "[]", request, "+1", "pending", None, None,
                           "2031-03-05T13:00:00Z", MOVED_BY_WINDOW, HOURS),
                PlannedRow(2, "[]", request, "+1", "pending", None, None,
                           "2031-03-05T15:00:00Z", 0, None),
            ],
            run_id="r",
        )  # fmt: skip
        journal.retime_by_cap(1, "2031-03-05T14:00:00Z", deferred=True, rule=CAP)
        journal.retime_by_cap(2, "2031-03-05T16:00:00Z", deferred=True, rule=CAP)
        assert _rule(journal, 1) == f"{HOURS}; then {CAP}"
        assert _rule(journal, 2) == CAP
        # The reservation let both ring at their own times: only the cap's part goes.
        journal.retime_by_cap(1, "2031-03-05T13:00:00Z", deferred=False)
        journal.retime_by_cap(2, "2031-03-05T15:00:00Z", deferred=False)
        assert _rule(journal, 1) == HOURS
        assert _rule(journal, 2) is None
        rows = {r.row: r.time_moved for r in journal.report_rows()}
        assert rows == {1: MOVED_BY_WINDOW, 2: 0}
        assert MOVED_BY_CAP not in rows.values()
