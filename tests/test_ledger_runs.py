"""The contact ledger in real runs, as a user meets it: the installed `batchcall` against a
sandbox on loopback, with a ledger of the test's own (`--ledger`, never the user's state
directory: `XDG_STATE_HOME` points into the test's directory too).

Nobody is called twice across runs and run directories, nobody is called more often than
`--max-calls` allows, no suppressed number is called (even one added while a run is sending),
and a crash leaves the ledger and the journal in agreement."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, popen, read_results, write_contacts

from batchcall._journal import Journal
from batchcall._ledger import open_ledger, team_fingerprint
from batchcall.sandbox import RunningSandbox, SandboxConfig, start_sandbox

pytest_plugins = ["ledger_support"]


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every child inherits a state directory inside the test's: no run here can reach the
    user's own default ledger, even by mistake."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _run(
    server: RunningSandbox, source: Path, out: Path, ledger: Path | str, *extra: str
) -> tuple[int, dict, str]:
    """`batchcall run SOURCE --json` against `server`; (exit code, summary, stderr)."""
    done = cli(
        "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", server.base_url, "--ledger", str(ledger), "--out", str(out), "--json",
        *extra, key=server.api_key, cwd=source.parent,
    )  # fmt: skip
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, summary, done.stderr


def _one_row(path: Path, phone: str, at: datetime) -> Path:
    """A contacts file of one row calling `phone` at `at`."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "scheduled_time"])
        writer.writerow([phone, at.isoformat(timespec="seconds")])
    return path


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the repeat guard ---------------------------------------------------------------------------


def test_the_same_file_run_twice_into_two_run_directories_calls_nobody_twice(
    tmp_path: Path,
) -> None:
    """The same 30 rows run again with another --out: nothing is sent, every row is
    `already_scheduled` naming the first run and its call_id, skipped.csv lists them (not
    failed.csv), and the exit code is 0. `validate` shows the same early answer. With
    --allow-repeat the same file calls them all again."""
    phones = au_mobiles(30)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = tmp_path / "team-ledger.sqlite"
    with start_sandbox(SandboxConfig()) as server:
        code, first, err = _run(server, source, tmp_path / "first", ledger)
        assert (code, first["counts"]) == (0, {"scheduled": 30}), err
        call_ids = {r["row"]: r["call_id"] for r in read_results(tmp_path / "first/results.csv")}

        code, second, err = _run(server, source, tmp_path / "second", ledger)
        assert (code, second["counts"], second["requests"]) == (0, {"already_scheduled": 30}, 0)
        assert len(server.calls()) == 30
        for row in read_results(tmp_path / "second/results.csv"):
            assert row["outcome"] == row["error_code"] == "already_scheduled"
            assert "run first/" in row["error"], row["error"]
            assert f"call_id {call_ids[row['row']]}" in row["error"], row["error"]
            assert "--allow-repeat" in row["error"]
        assert len(read_results(tmp_path / "second/skipped.csv")) == 30
        assert read_results(tmp_path / "second/failed.csv") == []

        dry = cli(
            "validate", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--ledger", str(ledger), "--out",
            str(tmp_path / "dry"), "--json", key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["counts"] == {"already_scheduled": 30}

        code, third, err = _run(server, source, tmp_path / "third", ledger, "--allow-repeat")
        assert (code, third["counts"]) == (0, {"scheduled": 30}), err
        assert Counter(c["phone_number"] for c in server.calls()) == Counter(phones * 2)


# --- frequency caps -----------------------------------------------------------------------------


def _five_runs(tmp_path: Path, server: RunningSandbox, *extra: str) -> list[tuple[int, dict]]:
    """Five runs in a row, each of one row calling the same phone, 2 to 6 hours from now."""
    (phone,) = au_mobiles(1, start=500)
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    done = []
    for n in range(5):
        source = _one_row(tmp_path / f"call{n}.csv", phone, base + timedelta(hours=n))
        code, summary, err = _run(
            server, source, tmp_path / f"run{n}", tmp_path / "ledger.sqlite",
            "--max-calls", "3/24h", *extra,
        )  # fmt: skip
        assert code == 0, err
        done.append((code, summary))
    return done


def test_a_fourth_and_fifth_call_in_a_day_are_deferred_to_the_first_instants_the_cap_allows(
    tmp_path: Path,
) -> None:
    """With --max-calls 3/24h, five runs calling one phone 2, 3, 4, 5 and 6 hours from now: the
    first three ring as asked; the server receives the 4th at the first call + 24 h and the
    5th at the second call + 24 h (the first instants the cap allows), so at most 3 ring in
    any 24 hours. The deferred rows say so in results.csv."""
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    with start_sandbox(SandboxConfig()) as server:
        runs = _five_runs(tmp_path, server)
        received = [c["scheduled_time"] for c in server.calls()]
    assert [summary["counts"] for _, summary in runs] == [{"scheduled": 1}] * 5
    asked = [_iso(base + timedelta(hours=n)) for n in range(3)]
    assert received == [*asked, _iso(base + timedelta(hours=24)), _iso(base + timedelta(hours=25))]
    rings = sorted(datetime.fromisoformat(t) for t in received)
    assert all(rings[i + 3] - rings[i] >= timedelta(hours=24) for i in range(len(rings) - 3))
    (fourth,) = read_results(tmp_path / "run3/results.csv")
    assert fourth["scheduled_time_sent"] == received[3] and fourth["time_moved"] == "yes"


def test_calls_over_the_cap_in_reject_mode_are_frequency_capped(tmp_path: Path) -> None:
    """The same five runs with --outside-window reject: the 4th and 5th are never sent, they
    are `frequency_capped` naming the cap and the calls that fill it, and exit 0."""
    with start_sandbox(SandboxConfig()) as server:
        runs = _five_runs(tmp_path, server, "--outside-window", "reject")
        assert len(server.calls()) == 3
    counts = [summary["counts"] for _, summary in runs]
    assert counts == [{"scheduled": 1}] * 3 + [{"frequency_capped": 1}] * 2
    (fifth,) = read_results(tmp_path / "run4/results.csv")
    assert fifth["outcome"] == "frequency_capped"
    assert "3/24h cap" in fifth["error"] and "run run0/" in fifth["error"], fifth["error"]


# --- suppression --------------------------------------------------------------------------------


def _lists(tmp_path: Path, numbers: list[str]) -> list[Path]:
    """10,000 numbers in three lists of mixed formats: E.164 in plain text (with comments and
    blank lines), national numbers with spaces in a CSV with reasons, and an xlsx holding
    numeric cells and national strings."""
    plain = tmp_path / "dnc.txt"
    lines = ["# regulator's do-not-call list"]
    lines += [n if i % 50 else f"{n}   # by phone" for i, n in enumerate(numbers[:4000])]
    plain.write_text("\n".join([*lines[:2000], "", *lines[2000:]]) + "\n", encoding="utf-8")
    table = tmp_path / "optouts.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Mobile", "Reason"])
        for n in numbers[4000:7000]:
            national = "0" + n[3:]  # 0412345678 -> 0412 345 678
            writer.writerow([f"{national[:4]} {national[4:7]} {national[7:]}", "opted out"])
    book = tmp_path / "crm.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.append(["Phone Number", "Notes"])
    for i, n in enumerate(numbers[7000:]):
        sheet.append([int(n[1:]) if i % 2 else "0" + n[3:], "deceased"])
    wb.save(book)
    return [plain, table, book]


def test_no_number_of_a_10000_number_suppression_list_in_mixed_formats_is_called(
    tmp_path: Path,
) -> None:
    """150 rows whose numbers are on the lists (50 from each format) and 50 that are not: the
    50 are called, the 150 are `suppressed` naming the file and line, none of them is called."""
    numbers = au_mobiles(10_000)
    lists = _lists(tmp_path, numbers)
    listed = numbers[10:60] + numbers[5000:5050] + numbers[9000:9050]
    free = au_mobiles(50, start=200_000)
    source = write_contacts(tmp_path / "contacts.csv", listed + free)
    suppress = [arg for path in lists for arg in ("--suppress", str(path))]
    with start_sandbox(SandboxConfig()) as server:
        code, summary, err = _run(
            server, source, tmp_path / "run", tmp_path / "ledger.sqlite", "--region", "AU",
            *suppress,
        )  # fmt: skip
        called = {c["phone_number"] for c in server.calls()}
    assert code == 0, err
    assert summary["counts"] == {"scheduled": 50, "suppressed": 150}
    assert called == set(free)
    rows = {r["phone_e164"]: r for r in read_results(tmp_path / "run/results.csv")}
    assert "dnc.txt line 12" in rows[numbers[10]]["error"]
    assert "optouts.csv line 1002" in rows[numbers[5000]]["error"]
    assert "opted out" in rows[numbers[5000]]["error"]
    assert "crm.xlsx row 2002" in rows[numbers[9000]]["error"]


def test_a_bad_line_in_a_suppression_list_stops_the_run_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """Lists fail closed: a line that is not a phone number stops the run with exit 2, naming
    the file and line, before any request and before the run directory is made."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(5))
    bad = tmp_path / "dnc.txt"
    bad.write_text("+61412000001\n0412 000 002\nJohn Smith\n", encoding="utf-8")
    with start_sandbox(SandboxConfig()) as server:
        code, _, err = _run(
            server, source, tmp_path / "run", tmp_path / "ledger.sqlite", "--suppress", str(bad)
        )
        assert server.stats()["created"] == 0
    assert code == 2
    assert f"{bad} line 3" in err and "fail closed" in err, err
    assert not (tmp_path / "run").exists()


def test_a_number_suppressed_while_a_run_is_sending_is_not_called(tmp_path: Path) -> None:
    """A 600-row run against a slow API (50 ms an answer, 2 at a time). Once 50 calls exist,
    `batchcall suppress add` puts 20 numbers of rows 500-519 on the team's list: none of them
    is called, since each row is checked again just before it leaves; they end `suppressed`,
    naming the team's list and the reason."""
    phones = au_mobiles(600)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = tmp_path / "ledger.sqlite"
    targets = phones[500:520]
    with start_sandbox(SandboxConfig(latency=0.05)) as server:
        proc = popen(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--ledger", str(ledger), "--concurrency", "2",
            "--out", str(tmp_path / "run"), "--quiet", key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while server.stats()["created"] < 50 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        added = cli(
            "suppress", "add", *targets, "--reason", "asked by phone", "--ledger", str(ledger),
            "--base-url", server.base_url, key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert server.stats()["created"] < 500, "the run reached the rows before the add"
        assert proc.wait(120) == 0, proc.communicate()
        called = Counter(c["phone_number"] for c in server.calls())
    assert not set(targets) & set(called)
    assert called == Counter(phones[:500] + phones[520:])
    rows = read_results(tmp_path / "run/results.csv")
    for row in rows[500:520]:
        assert row["outcome"] == "suppressed", row
        assert "the team's list" in row["error"] and "asked by phone" in row["error"]


# --- crashes and continued runs -----------------------------------------------------------------


def _kill_after(proc, server: RunningSandbox, created: int) -> None:
    deadline = time.monotonic() + 60
    while server.stats()["created"] < created and time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()}"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_after_kill_9_and_resume_the_ledger_and_the_journal_agree_on_every_row(
    tmp_path: Path,
) -> None:
    """A 300-row run with a ledger, some answers lost (500 after creating, dropped
    connections), killed with SIGKILL mid-run and resumed: every call the server created is
    in the ledger as `scheduled` (with its call_id) or `unknown`, no phone is called twice, and
    for every row the ledger's outcome is the journal's."""
    phones = au_mobiles(300)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = tmp_path / "ledger.sqlite"
    config = SandboxConfig(latency=0.01, seed=7, fault_500_after=0.03, fault_drop_after=0.03)
    with start_sandbox(config) as server:
        run = ["--from-number", FROM, "--script-id", SCRIPT, "--base-url", server.base_url]
        proc = popen(
            "run", str(source), *run, "--ledger", str(ledger), "--out", str(tmp_path / "run"),
            "--quiet", key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        _kill_after(proc, server, 120)
        done = cli("resume", str(tmp_path / "run"), "--json", key=server.api_key, cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
        calls = server.calls()
        team = team_fingerprint(server.base_url, server.api_key)
    called = Counter(c["phone_number"] for c in calls)
    assert max(called.values()) == 1, "a phone was called twice"
    with Journal(tmp_path / "run/journal.sqlite") as journal:
        rows = {r.row: r for r in journal.report_rows()}
        run_id = journal.meta("ledger_run_id")
    with open_ledger(ledger, team=team) as opened:
        placed = {p: opened.history(p) for p in phones}
    for call in calls:
        (entry,) = placed[call["phone_number"]]
        assert entry.outcome in ("scheduled", "unknown"), entry
        if entry.outcome == "scheduled":
            assert entry.call_id == call["call_id"]
    for row in rows.values():
        entries = [p for p in placed[row.phone_e164 or ""] if p.run_id == run_id]
        if row.state in ("scheduled", "unknown", "failed"):
            (entry,) = entries
            assert (entry.row, entry.outcome, entry.call_id) == (row.row, row.state, row.call_id)
        else:
            assert entries == [], (row, entries)
    assert not [r for r in rows.values() if r.state in ("pending", "sending")]


def test_two_resumes_started_at_once_one_works_the_other_names_it(tmp_path: Path) -> None:
    """A run killed mid-way, then `batchcall resume DIR` twice at the same moment: one sends
    the rest, the other exits 2 at once and names the process holding the run; no phone is
    called twice."""
    phones = au_mobiles(200)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = tmp_path / "ledger.sqlite"
    with start_sandbox(SandboxConfig(latency=0.02)) as server:
        run = ["--from-number", FROM, "--script-id", SCRIPT, "--base-url", server.base_url]
        proc = popen(
            "run", str(source), *run, "--ledger", str(ledger), "--out", str(tmp_path / "run"),
            "--concurrency", "4", "--quiet", key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        _kill_after(proc, server, 40)
        both = [
            popen("resume", str(tmp_path / "run"), "--quiet", key=server.api_key, cwd=tmp_path)
            for _ in range(2)
        ]
        ends = [(p.wait(120), p.communicate()[1]) for p in both]
        called = Counter(c["phone_number"] for c in server.calls())
    codes = sorted(code for code, _ in ends)
    assert codes in ([0, 2], [1, 2]), ends
    (refused,) = [err for code, err in ends if code == 2]
    assert "is in use by process" in refused and "batchcall resume" in refused, refused
    assert max(called.values()) == 1, "a phone was called twice"
    assert set(called) <= set(phones) and len(called) >= 195


# --- the sandbox keeps to itself ----------------------------------------------------------------


def test_a_sandbox_run_never_blocks_a_real_run(tmp_path: Path) -> None:
    """`--sandbox` runs against a ledger of its own (beside the real one), so the same file
    with the same --team then calls everyone for real; the real ledger holds only the real
    calls."""
    phones = au_mobiles(10)
    source = write_contacts(tmp_path / "contacts.csv", phones)
    ledger = tmp_path / "ledger.sqlite"
    demo = cli(
        "run", str(source), "--sandbox", "--team", "acme", "--ledger", str(ledger),
        "--out", str(tmp_path / "demo"), "--json", key=None, cwd=tmp_path,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["counts"] == {"scheduled": 10}
    assert (tmp_path / "ledger-sandbox.sqlite").is_file()
    with start_sandbox(SandboxConfig()) as server:
        code, real, err = _run(server, source, tmp_path / "real", ledger, "--team", "acme")
        assert (code, real["counts"]) == (0, {"scheduled": 10}), err
        assert len(server.calls()) == 10
    with open_ledger(ledger, team="acme") as opened:
        assert [[p.run_id.split("/")[0] for p in opened.history(n)] for n in phones] == [
            ["real"]
        ] * 10
