"""Where a ledger lives and what it holds: private files, no symlinks, no secrets, own sandbox."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from ledger_helpers import NOW, au_mobile, call

from batchcall import UsageError
from batchcall._ledger import (
    Cap,
    Policy,
    check_team,
    default_path,
    open_ledger,
    parse_cap,
    team_fingerprint,
)
from batchcall._ledger._open import redact

pytest_plugins = ["ledger_support"]

KEY = "vx_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_default_ledger_is_private_in_the_users_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --ledger, the ledger is ledger.sqlite in the user's state directory: the
    directory 0700, the file and its WAL 0600, whatever the umask."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    old = os.umask(0o022)
    try:
        with open_ledger(None, team="sales") as ledger:
            ledger.reserve(call(au_mobile(1), at=NOW), Policy(), now=NOW)
            path = default_path()
            assert path == tmp_path / "state" / "batchcall" / "ledger.sqlite"
            assert _mode(path.parent) == 0o700
            assert _mode(path) == 0o600
            assert _mode(path.with_name("ledger.sqlite-wal")) == 0o600
    finally:
        os.umask(old)


def test_a_loose_default_directory_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state directory left world-readable is made 0700 again before the ledger opens."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "batchcall").mkdir(mode=0o755)
    os.chmod(tmp_path / "batchcall", 0o755)
    open_ledger(None, team="sales").close()
    assert _mode(tmp_path / "batchcall") == 0o700


def test_an_explicit_path_gets_a_private_new_directory_and_file(tmp_path: Path) -> None:
    """--ledger PATH in a directory that does not exist yet: made 0700, the file 0600."""
    path = tmp_path / "team" / "calls.sqlite"
    open_ledger(path, team="sales").close()
    assert _mode(path.parent) == 0o700 and _mode(path) == 0o600
    open_ledger(f"sqlite://{path}", team="sales").close()  # the same file, as a URL


def test_symlinks_are_refused_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symbolic link in place of the ledger file, its WAL or the default directory is
    refused with a message, and the link's target is left untouched."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("not a ledger", encoding="utf-8")
    link = tmp_path / "ledger.sqlite"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        open_ledger(link, team="sales")
    assert target.read_text(encoding="utf-8") == "not a ledger"

    wal_dir = tmp_path / "wal"
    wal_dir.mkdir()
    (wal_dir / "ledger.sqlite-wal").symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        open_ledger(wal_dir / "ledger.sqlite", team="sales")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "batchcall").symlink_to(tmp_path / "wal")
    with pytest.raises(UsageError, match="symbolic link"):
        open_ledger(None, team="sales")


def test_the_ledger_never_holds_the_api_key(location: str, tmp_path: Path) -> None:
    """The default team id is a fingerprint of host and key; neither the key nor any part of
    it is in the database (on PostgreSQL, in any column of any row)."""
    team = team_fingerprint("https://api.voxworks.ai", KEY)
    assert team.startswith("key:") and len(team) == 20 and KEY[:8] not in team
    with open_ledger(location, team=team) as ledger:
        ledger.reserve(call(au_mobile(1), at=NOW), Policy(), now=NOW)
        ledger.settle("run-1", 1, "scheduled", "call-1")
        ledger.suppress([au_mobile(2)], now=NOW, reason="opted out")
    if location.startswith("postgresql"):
        with psycopg.connect(location) as db:
            dumped = "".join(
                str(row)
                for table in ("ledger_calls", "ledger_suppressions", "ledger_migrations")
                for row in db.execute(f"SELECT * FROM {table}")
            )
        assert team in dumped
    else:
        files = [Path(location), Path(location + "-wal")]
        dumped = "".join(p.read_bytes().decode("latin-1") for p in files if p.exists())
        assert team in dumped
    for fragment in (KEY, KEY[:12], KEY[-12:]):
        assert fragment not in dumped


def test_fingerprints_differ_by_key_and_host() -> None:
    """Another key, or the same key on another API host, is another team."""
    base = team_fingerprint("https://api.voxworks.ai", KEY)
    assert team_fingerprint("https://api.voxworks.ai/", KEY) == base
    assert team_fingerprint("https://api.voxworks.ai", KEY + "x") != base
    assert team_fingerprint("http://127.0.0.1:8080", KEY) != base
    assert check_team(base) == base


def test_team_names_are_checked() -> None:
    """An explicit --team is a plain name; a `:` (reserved for fingerprints) or spaces are
    refused with a message."""
    assert check_team("sales-emea.2") == "sales-emea.2"
    for bad in ("", "key:abc", "two words", "x" * 65):
        with pytest.raises(UsageError, match="not a team name"):
            check_team(bad)


def test_a_sandbox_run_has_a_ledger_of_its_own(
    location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo against the sandbox never blocks (or is blocked by) a real call to the same
    person: it has its own file, or on PostgreSQL its own team."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    c = call(au_mobile(1), at=NOW + timedelta(hours=1))
    for where in (None, location):
        with open_ledger(where, team="sales", sandbox=True) as demo:
            assert demo.reserve(c, Policy(), now=NOW).action == "send"
        with open_ledger(where, team="sales") as real:
            assert real.check([c], Policy(), now=NOW)[0].action == "send"
    assert default_path(sandbox=True).name == "ledger-sandbox.sqlite"
    assert default_path(sandbox=True).exists()
    if not location.startswith("postgresql"):
        assert Path(location).with_name("ledger-sandbox.sqlite").exists()


def test_bad_locations_say_what_to_write(tmp_path: Path) -> None:
    """An unknown URL scheme, or a PostgreSQL server that is not there, is a usage error that
    never shows the password."""
    with pytest.raises(UsageError, match="unknown scheme 'mysql'"):
        open_ledger("mysql://u:pw@host/db", team="sales")
    with pytest.raises(UsageError, match="Cannot open the ledger") as caught:
        open_ledger("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2", team="sales")
    assert "s3cret" not in str(caught.value)
    assert redact("postgresql://u:p%40ss@h/db?password=x") == "postgresql://u:***@h/db?password=***"


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    """--ledger pointing at some other file fails with the file's name."""
    other = tmp_path / "notes.sqlite"
    other.write_text("shopping list\n" * 100, encoding="utf-8")
    with pytest.raises(UsageError, match=r"notes\.sqlite"):
        open_ledger(other, team="sales")


@pytest.mark.parametrize(
    ("text", "cap"),
    [
        ("3/24h", Cap(3, timedelta(hours=24))),
        ("7/7d", Cap(7, timedelta(days=7))),
        (" 1 / d ", Cap(1, timedelta(days=1))),
        ("2/30m", Cap(2, timedelta(minutes=30))),
        ("4/2w", Cap(4, timedelta(weeks=2))),
    ],
)
def test_caps_parse(text: str, cap: Cap) -> None:
    """--max-calls N/PERIOD reads as N calls in any rolling PERIOD."""
    assert parse_cap(text) == cap


def test_caps_print_as_written() -> None:
    """Messages name a cap the way a user writes it."""
    assert [str(parse_cap(t)) for t in ("3/24h", "7/7d", "2/30m", "1/d")] == [
        "3/24h",
        "7/7d",
        "2/30m",
        "1/24h",
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("3", "not N/PERIOD"),
        ("3/24", "not N/PERIOD"),
        ("3/24y", "not N/PERIOD"),
        ("x/24h", "not N/PERIOD"),
        ("0/24h", "allows no call"),
        ("3/0h", "empty period"),
        ("3/400d", "at most a year"),
    ],
)
def test_bad_caps_say_how_to_write_one(text: str, says: str) -> None:
    """A bad --max-calls value is a usage error with an example."""
    with pytest.raises(UsageError, match=says):
        parse_cap(text)
