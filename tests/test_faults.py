"""Injected server faults: a row whose call was created is never reported failed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, read_results, write_contacts

import batchcall


def _run(make_sandbox, tmp_path: Path, retry_ambiguous: bool = False, **faults: float):
    """80 rows through a sandbox with `faults`: the summary, the calls it made, rows by phone."""
    phones = au_mobiles(80)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    server = make_sandbox(seed=11, retry_after_503=0.1, **faults)
    summary = batchcall.run(
        source,
        from_number=FROM,
        script_id=SCRIPT,
        reports_dir=tmp_path / "r",
        base_url=server.base_url,
        api_key=server.api_key,
        retry_ambiguous=retry_ambiguous,
    )
    calls = server.calls()
    rows = {r["phone_e164"]: r for r in read_results(Path(summary.results_csv))}
    return summary, calls, rows


@pytest.mark.parametrize(
    "fault", ["fault_500_before", "fault_500_after", "fault_drop_after", "fault_503"]
)
def test_no_created_call_is_ever_reported_failed(make_sandbox, tmp_path, fault):
    """With 25% of requests hit by one fault, every call that exists belongs to a row that is
    scheduled or unknown, and every scheduled row's call exists."""
    summary, calls, rows = _run(make_sandbox, tmp_path, **{fault: 0.25})
    called = Counter(c["phone_number"] for c in calls)
    assert max(called.values()) == 1
    for phone in called:
        assert rows[phone]["outcome"] in ("scheduled", "unknown")
    ids = {c["call_id"] for c in calls}
    for row in rows.values():
        if row["outcome"] == "scheduled":
            assert row["call_id"] in ids
    if fault == "fault_503":
        # Nothing was executed on a 503: rows are retried, and one that drew five 503s in a
        # row (0.25**5 a row) fails as `unavailable`, with no call behind it.
        assert summary.counts.get("unknown", 0) == 0
        assert summary.counts["scheduled"] >= 75
        for phone, row in rows.items():
            if row["outcome"] == "failed":
                assert row["error_code"] == "unavailable" and row["attempts"] == "5"
                assert phone not in called
    else:
        assert summary.counts.get("unknown", 0) > 0
        assert summary.counts.get("failed", 0) == 0


def test_retry_ambiguous_replays_instead_of_calling_twice(make_sandbox, tmp_path):
    """--retry-ambiguous re-sends 500-after-create rows with the same Idempotency-Key; the
    server replays the original call, so nobody is called twice and the ids match."""
    summary, calls, rows = _run(make_sandbox, tmp_path, retry_ambiguous=True, fault_500_after=0.3)
    assert max(Counter(c["phone_number"] for c in calls).values()) == 1
    by_phone = {c["phone_number"]: c["call_id"] for c in calls}
    for phone, row in rows.items():
        if row["outcome"] == "scheduled":
            assert by_phone[phone] == row["call_id"]
    assert summary.counts.get("scheduled", 0) >= 75
