"""`batchcall suppress ...` and `batchcall ledger ...`, driven through click's CliRunner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from ledger_helpers import au_mobile, call

from batchcall._ledger import Policy, open_ledger, team_fingerprint
from batchcall._ledger_cli import ledger, suppress

pytest_plugins = ["ledger_support"]

KEY = "vx_test_0123456789abcdef0123456789"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A shell whose environment names nothing: no key, no ledger, a private state dir."""
    for name in ("VOXWORKS_API_KEY", "VOXWORKS_BASE_URL", "BATCHCALL_LEDGER", "BATCHCALL_TEAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return CliRunner()


def _later(days: int) -> str:
    """A date `days` from today, as a user would type it."""
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def test_suppress_add_list_remove(runner: CliRunner, location: str) -> None:
    """Add numbers in any format with a reason and an end date, list them, remove one."""
    base = ["--ledger", location, "--team", "sales"]
    added = runner.invoke(
        suppress,
        ["add", "0412 000 001", "+61412000002", "--reason", "opted out", "--until", _later(30),
         "--region", "AU", *base],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Suppressed 2 number(s)" in added.output and "team sales" in added.output

    listed = runner.invoke(suppress, ["list", *base])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t") == ["phone", "reason", "until", "source", "added"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [
        [au_mobile(1), "opted out"],
        [au_mobile(2), "opted out"],
    ]
    assert lines[1].split("\t")[2].startswith(_later(31))  # through that day, everywhere

    removed = runner.invoke(suppress, ["remove", "+61412000001", "+61412000009", *base])
    assert removed.exit_code == 0 and "Removed 1 of 2" in removed.output
    with open_ledger(location, team="sales") as opened:
        assert [s.phone for s in opened.suppressions()] == [au_mobile(2)]


def test_suppress_import_and_ledger_show(runner: CliRunner, location: str, tmp_path: Path) -> None:
    """Import a list file; `ledger show` prints a phone's calls, oldest first."""
    team = f"cli-{tmp_path.name[-12:]}".replace("_", "-")
    base = ["--ledger", location, "--team", team]
    listing = tmp_path / "dnc.csv"
    listing.write_text("phone,reason\n+61412000003,complaint\n", encoding="utf-8")
    imported = runner.invoke(suppress, ["import", str(listing), *base])
    assert imported.exit_code == 0, imported.output
    assert "Imported 1 number(s)" in imported.output

    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with open_ledger(location, team=team) as opened:
        opened.reserve(call(au_mobile(4), at=at, run="run-a", row=3), Policy(), now=at)
        opened.settle("run-a", 3, "scheduled", "call-77")
    shown = runner.invoke(ledger, ["show", "0412 000 004", "--region", "AU", *base])
    assert shown.exit_code == 0, shown.output
    rows = shown.stdout.splitlines()
    assert rows[1].split("\t")[:5] == [
        at.isoformat().replace("+00:00", "Z"),
        "scheduled",
        "run-a",
        "3",
        "call-77",
    ]


def test_ledger_import_then_prune(runner: CliRunner, tmp_path: Path) -> None:
    """Calls made elsewhere are imported (times read in --timezone); prune removes the older
    ones and refuses a date in the future."""
    path = tmp_path / "ledger.sqlite"
    base = ["--ledger", str(path), "--team", "sales"]
    made = tmp_path / "dialer.csv"
    made.write_text(
        "phone,time,call_id\n"
        f"+61412000001,{_later(-40)} 10:00,old\n"
        f"+61412000001,{_later(-1)} 10:00,recent\n",
        encoding="utf-8",
    )
    imported = runner.invoke(ledger, ["import", str(made), "--timezone", "Australia/Sydney", *base])
    assert imported.exit_code == 0, imported.output
    assert "Imported 2 call(s)" in imported.output

    future = runner.invoke(ledger, ["prune", "--before", _later(3), *base])
    assert future.exit_code == 2 and "in the future" in future.output

    pruned = runner.invoke(ledger, ["prune", "--before", _later(-30), *base])
    assert pruned.exit_code == 0, pruned.output
    assert "Deleted 1 call(s)" in pruned.output
    with open_ledger(path, team="sales") as opened:
        assert [c.call_id for c in opened.history(au_mobile(1))] == ["recent"]


def test_the_default_team_is_the_keys_fingerprint(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --team the commands use the team of $VOXWORKS_API_KEY, as runs do, and the
    default ledger file."""
    monkeypatch.setenv("VOXWORKS_API_KEY", KEY)
    done = runner.invoke(suppress, ["add", "+61412000001"])
    assert done.exit_code == 0, done.output
    team = team_fingerprint("https://api.voxworks.ai", KEY)
    assert team in done.output
    with open_ledger(None, team=team) as opened:
        assert [s.phone for s in opened.suppressions()] == [au_mobile(1)]


def test_ledger_location_comes_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$BATCHCALL_LEDGER and $BATCHCALL_TEAM stand in for --ledger and --team."""
    path = tmp_path / "shared.sqlite"
    monkeypatch.setenv("BATCHCALL_LEDGER", str(path))
    monkeypatch.setenv("BATCHCALL_TEAM", "ops")
    done = runner.invoke(suppress, ["add", "+61412000001"])
    assert done.exit_code == 0 and str(path) in done.output and "team ops" in done.output


@pytest.mark.parametrize(
    ("group", "args", "says"),
    [
        (suppress, ["add", "+61412000001"], "--team NAME"),
        (suppress, ["add", "hello", "--team", "x"], "'hello' is not a valid phone number"),
        (suppress, ["add", "0412000001", "--team", "x"], "--region"),
        (suppress, ["add", "+61412000001", "--until", "soon", "--team", "x"], "--until 'soon'"),
        (suppress, ["import", "missing.csv", "--team", "x"], "no such file"),
        (suppress, ["list", "--team", "bad team"], "not a team name"),
        (ledger, ["show", "12", "--team", "x"], "not a valid phone number"),
        (ledger, ["prune", "--before", "whenever", "--team", "x"], "is not a date"),
        (ledger, ["import", "missing.csv", "--team", "x"], "does not exist"),
        (suppress, ["list", "--ledger", "ftp://x/y", "--team", "x"], "unknown scheme"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    runner: CliRunner, group: object, args: list[str], says: str
) -> None:
    """Every bad input says what is wrong in one line on stderr, and exits 2."""
    done = runner.invoke(group, args)  # type: ignore[arg-type]
    assert done.exit_code == 2, done.output
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchcall: ") and says in lines[0]
