"""Re-running failures sends exactly the failures, and the same file is never run twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, read_results, write_contacts

import batchcall
from batchcall._errors import SameInputError


def test_failed_rows_are_resent_exactly_once_each(make_sandbox, tmp_path):
    """400 rows, 30 refused with a 400: 370 scheduled, 30 failed (exit 1). The same file again
    is refused with no request. After 20 become acceptable, `run results.csv --only-failed`
    creates exactly those 20; after the rest do, `retry DIR` creates exactly the last 10."""
    phones = au_mobiles(400)
    refused = phones[5::13][:30]
    source = write_contacts(tmp_path / "contacts.csv", phones)
    reports = tmp_path / "reports"
    srv = make_sandbox(limit=200, window=1.0, reject_phones=set(refused))
    common = {
        "from_number": FROM,
        "script_id": SCRIPT,
        "reports_dir": reports,
        "base_url": srv.base_url,
        "api_key": srv.api_key,
    }

    first = batchcall.run(source, **common)
    assert (first.exit_code, first.counts) == (1, {"scheduled": 370, "failed": 30})
    assert first.errors == {"rejected": 30}

    before = srv.stats()["requests"]
    with pytest.raises(SameInputError) as refused_again:
        batchcall.run(source, **common)
    assert refused_again.value.exit_code == 2
    assert f"batchcall retry {first.run_dir}" in str(refused_again.value)
    assert srv.stats()["requests"] == before

    srv.configure(reject_phones=set(refused[20:]))
    second = batchcall.run(Path(first.results_csv), only_failed=True, **common)
    assert second.counts == {"scheduled": 20, "failed": 10}
    again = {r["phone_e164"]: r["outcome"] for r in read_results(Path(second.results_csv))}
    assert again == {p: "scheduled" for p in refused[:20]} | {p: "failed" for p in refused[20:]}
    assert len(srv.calls()) == 390

    srv.configure(reject_phones=set())
    third = batchcall.retry(second.run_dir, api_key=srv.api_key)
    assert third.counts == {"scheduled": 30}
    calls = srv.calls()

    assert len(calls) == 400
    assert Counter(c["phone_number"] for c in calls).most_common(1)[0][1] == 1
    assert {c["phone_number"] for c in calls} == set(phones)


def test_only_failed_needs_one_of_our_results_files(tmp_path):
    """--only-failed on a plain contacts file is a usage error, and nothing is sent."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(3))
    with pytest.raises(batchcall.InputError, match="--only-failed"):
        batchcall.run(
            source,
            from_number=FROM,
            script_id=SCRIPT,
            only_failed=True,
            reports_dir=tmp_path / "r",
            base_url="http://127.0.0.1:9",
            api_key="k",
        )
