"""report.html, read in a real headless Chromium with the network cut off and JavaScript off:
what the README's first command promises, numbers that agree with summary.json and
results.csv in a run with faults, and no phone number or key on the page."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from browser_support import bar_values, opened, screenshot, text
from e2e_support import FROM, SCRIPT, cli, read_results, the_run_dir

from batchcall._digest import FIXES


def _report_line(stdout: str) -> Path:
    last = stdout.rstrip().splitlines()[-1]
    found = re.fullmatch(r"\s*report: (\S+/report\.html)", last)
    assert found, f"the summary does not end by naming the report: {last!r}"
    return Path(found.group(1))


def test_the_sample_run_ends_by_naming_a_self_contained_report(sample: Path, tmp_path: Path):
    """`batchcall run sample_data/contacts.csv --sandbox`: its last line names
    reports/<run>/report.html, which shows 47 scheduled and 3 invalid, the three error codes
    with their fixes, and both charts drawn, with no network request made."""
    done = cli("run", sample, "--sandbox", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = _report_line(done.stdout)
    assert report.parent.parent == Path("reports")
    with opened(tmp_path / report) as (page, attempted):
        assert text(page, ".count[data-state=scheduled] .n") == "47"
        assert text(page, ".count[data-state=invalid] .n") == "3"
        codes = page.locator(".problem").evaluate_all("els => els.map(e => e.dataset.code)")
        assert sorted(codes) == ["damaged_phone", "invalid_phone", "missing_phone"]
        for code in codes:
            assert text(page, f".problem[data-code={code}] .fix") == FIXES[code]
        # 47 calls, and the 429 (if any) that showed when the sandbox's first window ends.
        throttled = int(text(page, "#throttled"))
        assert throttled <= 1
        assert sum(bar_values(page, "#chart-requests")) == 47 + throttled
        assert sum(bar_values(page, "#chart-requests", "throttled")) == throttled
        assert sum(bar_values(page, "#chart-hours")) == 47
        assert page.locator("#chart-hours svg rect.bar").count() > 0
        screenshot(page, "report-sample.png")
    assert attempted == []
    html = (tmp_path / report).read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|\bsrc=|@import|url\(", html)


def _faulty_run(make_sandbox, tmp_path: Path, sample: Path):
    server = make_sandbox(
        limit=8, window=1.0, headers="never", seed=5, fault_500_before=0.08,
        fault_500_after=0.04, fault_503=0.1, retry_after_503=0.2,
    )  # fmt: skip
    done = cli(
        "run", sample, "--base-url", server.base_url, "--from-number", FROM, "--script-id",
        SCRIPT, "--calling-window", "mon-fri 10:00-16:00", "--breaker", "0",
        cwd=tmp_path, key=server.api_key,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    run_dir = the_run_dir(tmp_path / "reports")
    return server, run_dir, json.loads((run_dir / "summary.json").read_text())


def test_the_reports_numbers_are_summary_json_and_results_csv(make_sandbox, tmp_path, sample):
    """A run with 500s, 503s and 429s, a calling window and invalid rows: every count the page
    shows is the one summary.json and results.csv hold."""
    _, run_dir, summary = _faulty_run(make_sandbox, tmp_path, sample)
    results = read_results(run_dir / "results.csv")
    outcomes = Counter(r["outcome"] for r in results)
    errors = Counter(
        r["error_code"] for r in results if r["error_code"] and r["outcome"] != "scheduled"
    )
    assert summary["throttled"] > 0 and {"server_error", "invalid_phone"} <= set(errors)
    with opened(run_dir / "report.html") as (page, attempted):
        shown = page.locator(".count").evaluate_all(
            "els => Object.fromEntries(els.map(e => [e.dataset.state,"
            " +e.querySelector('.n').textContent]))"
        )
        assert shown == summary["counts"] == dict(outcomes)
        problems = page.locator(".problem").evaluate_all(
            "els => Object.fromEntries(els.map(e => [e.dataset.code, +e.dataset.count]))"
        )
        assert problems == summary["errors"] == dict(errors)
        assert int(text(page, "#exit-code").split()[-1]) == summary["exit_code"]
        assert int(text(page, "#requests")) == summary["requests"]
        assert int(text(page, "#throttled")) == summary["throttled"]
        assert sum(bar_values(page, "#chart-requests")) == summary["requests"]
        assert sum(bar_values(page, "#chart-requests", "throttled")) == summary["throttled"]
        assert sum(bar_values(page, "#chart-requests", "server_error")) > 0
        scheduled = outcomes["scheduled"]
        assert sum(bar_values(page, "#chart-hours")) == scheduled
        assert sum(bar_values(page, "#chart-weekdays")) == scheduled
        assert int(text(page, "#ringing-calls")) == scheduled
        table = page.locator("#chart-hours table tbody tr td:nth-child(2)")
        assert sum(map(int, table.all_text_contents())) == scheduled
        screenshot(page, "report-faults.png")
    assert attempted == []


def test_no_phone_number_and_no_key_on_the_page(make_sandbox, tmp_path, sample):
    """The default report can be shared: no contact's number, in any form it was written or
    sent in, and never the API key."""
    server, run_dir, _ = _faulty_run(make_sandbox, tmp_path, sample)
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert server.api_key not in html
    phones = {r["phone_e164"] for r in read_results(run_dir / "results.csv") if r["phone_e164"]}
    cells = {r["Phone"] for r in read_results(run_dir / "results.csv")}
    for phone in phones:
        assert phone not in html and phone[3:] not in html and "0" + phone[3:] not in html
    for cell in cells:
        digits = re.sub(r"\D", "", cell)
        if len(digits) >= 6:
            assert cell not in html
    assert "•" in html  # masked numbers are shown


def test_validate_and_retry_write_the_report_too(make_sandbox, tmp_path, sample):
    """A dry run's page says nothing was sent and counts the valid rows; a retry rewrites the
    run's page with the retry's counts."""
    checked = cli("validate", sample, "--from-number", FROM, "--script-id", SCRIPT, cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    with opened(tmp_path / _report_line(checked.stdout)) as (page, attempted):
        assert "dry run" in text(page, "h1")
        assert text(page, ".count[data-state=valid] .n") == "47"
        assert sum(bar_values(page, "#chart-hours")) == 47
        assert page.locator("#chart-requests").count() == 0
    assert attempted == []
    (tmp_path / "sent").mkdir()
    server, run_dir, _ = _faulty_run(make_sandbox, tmp_path / "sent", sample)
    retried = cli("retry", run_dir, "--include-unknown", cwd=tmp_path, key=server.api_key)
    assert _report_line(retried.stdout) == run_dir / "report.html"
    summary = json.loads((run_dir / "summary.json").read_text())
    with opened(run_dir / "report.html") as (page, _):
        assert text(page, "h1").startswith("batchcall retry")
        scheduled = summary["counts"]["scheduled"]
        assert text(page, ".count[data-state=scheduled] .n") == str(scheduled)


def _shown_counts(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-(?:state|code)="(\w+)"[^>]*>(?:<span class="n">)?(\d+)?', html)


def test_batchcall_report_renders_the_page_again_from_the_journal(sample: Path, tmp_path: Path):
    """`batchcall report DIR` writes the same counts, charts and problems again, and leaves
    the CSVs alone; a directory that holds no run is refused with exit 2."""
    done = cli("run", sample, "--sandbox", cwd=tmp_path)
    page = tmp_path / _report_line(done.stdout)
    before = page.read_text(encoding="utf-8")
    results = (page.parent / "results.csv").stat().st_mtime_ns
    page.unlink()
    again = cli("report", page.parent, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()) == page.parent / "report.html"
    after = page.read_text(encoding="utf-8")
    assert _shown_counts(after) == _shown_counts(before) and _shown_counts(after)
    assert after.count('class="bar ') == before.count('class="bar ')
    assert (page.parent / "results.csv").stat().st_mtime_ns == results
    refused = cli("report", tmp_path, cwd=tmp_path)
    assert refused.returncode == 2 and "No journal" in refused.stderr


def test_a_running_pass_rewrites_a_reloading_page_and_the_end_stops_it(
    sample: Path, tmp_path: Path, monkeypatch
):
    """While a run goes, report.html is rewritten every LIVE_EVERY seconds with the counts so
    far and reloads itself; the page the run ends with does not reload."""
    import batchcall._dispatch as dispatch
    from batchcall import _runner as runner

    pages: list[str] = []

    def spy(journal, timeline, **kwargs):
        page = real(journal, timeline, **kwargs)
        pages.append(page.read_text(encoding="utf-8"))
        return page

    real = dispatch.write_live
    monkeypatch.setattr(dispatch, "LIVE_EVERY", 0.2)
    monkeypatch.setattr(dispatch, "write_live", spy)
    summary = runner.run(sample, sandbox=True, reports_dir=tmp_path / "reports")
    assert pages, "no page was written while the run went"
    for html in pages:
        assert '<meta http-equiv="refresh"' in html and 'id="live"' in html
        assert 'id="exit-code"' not in html
    final = Path(summary.report_html or "").read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in final and 'id="live"' not in final
    assert 'data-state="scheduled"><span class="n">47<' in final


def test_report_unmasked_shows_whole_numbers_only_when_asked(sample: Path, tmp_path: Path):
    """--report-unmasked puts whole numbers on the page, with a warning not to share it;
    `batchcall report DIR --masked` masks them again."""
    checked = cli(
        "validate", sample, "--from-number", FROM, "--script-id", SCRIPT, "--report-unmasked",
        cwd=tmp_path,
    )  # fmt: skip
    page = tmp_path / _report_line(checked.stdout)
    html = page.read_text(encoding="utf-8")
    assert 'id="unmasked"' in html and FROM in html
    assert "Phone &#39;12345&#39;" in html  # the message as the validator wrote it
    masked = cli("report", page.parent, "--masked", cwd=tmp_path)
    assert masked.returncode == 0, masked.stderr
    html = page.read_text(encoding="utf-8")
    assert 'id="unmasked"' not in html and FROM not in html and "&#39;12345&#39;" not in html


def test_validate_prints_a_pre_flight_plan_and_keeps_it_in_summary_json(sample, tmp_path):
    """validate says how many calls, how long sending them takes at --max-rate, the last ring
    and the busiest callee-local hours; --json and summary.json hold the same plan."""
    args = ["validate", sample, *("--from-number", FROM, "--script-id", SCRIPT)]
    shown = cli(*args, "--max-rate", "5", "--calling-window", "au-telemarketing", cwd=tmp_path)
    assert "plan, if sent now:" in shown.stdout
    assert re.search(r"calls\s+47, sent in about 0:00:09 at 5/s\n", shown.stdout)
    assert "last ring" in shown.stdout and "busiest hours" in shown.stdout
    as_json = json.loads(cli(*args, "--max-rate", "5", "--json", cwd=tmp_path).stdout)
    plan = as_json["plan"]
    assert plan["calls"] == sum(plan["by_local_hour"]) == 47 and plan["rate_given"]
    run_dir = tmp_path / as_json["run_dir"]
    assert json.loads((run_dir / "summary.json").read_text())["plan"] == plan
    page = (tmp_path / as_json["report_html"]).read_text(encoding="utf-8")
    assert "0:00:09 at 5.0 requests/s" in page
