"""Options reach a run only through `config.resolve`: every value validated, a misspelt name
refused with the right one, and time-zone names read one way wherever they are written."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import batchcall
from batchcall._config import Settings
from batchcall._load import open_table
from batchcall._models import Checked
from batchcall._validate import Validator

FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# The console script beside this interpreter: what a user's shell would run.
BATCHCALL = str(Path(sys.executable).with_name("batchcall"))
NOT_A_ZONE = "'Mars/Olympus' is not an IANA time zone name such as Australia/Sydney"


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        201,
        json={"success": True, "call_id": "call_1", "contact_id": "c_1", "status": "scheduled"},
    )


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A finished run of two contacts, made against a mock API, with a ledger of its own (every
    test here uses the same key, so one shared ledger would skip the second test's calls)."""
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("phone\n0429069971\n0429069972\n", encoding="utf-8")
    summary = batchcall.run(
        contacts,
        from_number=FROM,
        script_id=SCRIPT,
        base_url="https://api.test",
        out=tmp_path / "run",
        ledger=str(tmp_path / "ledger.sqlite"),
        api_key="key",
        transport=httpx.MockTransport(created),
    )
    assert (summary.exit_code, summary.counts) == (0, {"scheduled": 2})
    return Path(summary.run_dir)


def shell(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXWORKS_", "BATCHCALL_"))}
    env["VOXWORKS_API_KEY"] = "key"
    return subprocess.run(
        [BATCHCALL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


# --- resume and retry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["resume", "--concurrency", "0"], "concurrency = 0 (from --concurrency)"),
        (["retry", "--max-rate", "-1"], "max_rate = -1.0 (from --max-rate)"),
        (["resume", "--base-url", "http://api.example.com"], "Refusing plain http://"),
    ],
)
def test_a_bad_override_to_resume_or_retry_exits_2_with_one_line(
    finished_run: Path, args: list[str], expected: str
) -> None:
    """`batchcall resume DIR --concurrency 0` (or retry with a negative --max-rate) exits 2
    with one line on stderr naming the option and value, no traceback, and the run untouched."""
    summary = (finished_run / "summary.json").read_bytes()
    command, *options = args
    result = shell(command, str(finished_run), *options, cwd=finished_run.parent)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("batchcall: ") and expected in line
    assert result.stdout == ""
    assert (finished_run / "summary.json").read_bytes() == summary


def test_resume_refuses_a_setting_a_run_cannot_change(finished_run: Path) -> None:
    """`batchcall.resume(dir, timeout=5)` is refused, naming what may change; the run keeps
    the settings it started with and nothing is read or sent."""
    summary = (finished_run / "summary.json").read_bytes()
    with pytest.raises(batchcall.UsageError) as refused:
        batchcall.resume(finished_run, timeout=5, api_key="key")
    message = str(refused.value)
    assert "'timeout' cannot be changed" in message
    assert "base_url, breaker, concurrency, ledger, max_rate and verbose" in message
    assert refused.value.exit_code == 2
    assert (finished_run / "summary.json").read_bytes() == summary


def test_retry_checks_the_value_of_an_override(finished_run: Path) -> None:
    """`batchcall.retry(dir, concurrency=0)` is a UsageError naming the argument and value,
    and a misspelt override gets the right name suggested."""
    with pytest.raises(batchcall.UsageError, match=r"concurrency = 0 \(from the concurrency"):
        batchcall.retry(finished_run, concurrency=0, api_key="key")
    with pytest.raises(batchcall.UsageError, match="did you mean 'max_rate'"):
        batchcall.retry(finished_run, max_rat=5, api_key="key")


def test_retry_runs_with_an_allowed_override(finished_run: Path) -> None:
    """A valid override is accepted: retrying a finished run with --concurrency 2 succeeds."""
    summary = batchcall.retry(
        finished_run, concurrency=2, api_key="key", transport=httpx.MockTransport(created)
    )
    assert (summary.exit_code, summary.counts) == (0, {"scheduled": 2})


# --- the Python API's keywords --------------------------------------------------------------------


@pytest.mark.parametrize("ready", [None, Settings(from_number=FROM, script_id=SCRIPT)])
def test_a_misspelt_keyword_to_run_is_refused_naming_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready: Settings | None
) -> None:
    """`batchcall.run(path, concurency=3)` raises UsageError suggesting `concurrency`, with or
    without a ready Settings, before any file is read or directory made."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(batchcall.UsageError) as refused:
        batchcall.run(tmp_path / "missing.csv", settings=ready, concurency=3)
    assert str(refused.value) == "Unknown option 'concurency'; did you mean 'concurrency'?"
    assert not (tmp_path / "reports").exists()


def test_a_bad_value_over_ready_settings_is_refused(tmp_path: Path) -> None:
    """A keyword laid over a ready Settings is validated like any other: concurrency=0 is a
    UsageError naming the argument, where it used to slip through unchecked."""
    ready = Settings(from_number=FROM, script_id=SCRIPT)
    with pytest.raises(batchcall.UsageError, match=r"concurrency = 0 \(from the concurrency"):
        batchcall.validate(tmp_path / "missing.csv", settings=ready, concurrency=0)


def test_a_misspelt_setting_in_batchcall_toml_gets_a_suggestion(tmp_path: Path) -> None:
    """`concurency = 3` in batchcall.toml exits 2 with a line that suggests `concurrency`."""
    (tmp_path / "batchcall.toml").write_text("concurency = 3\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text("phone\n0429069971\n", encoding="utf-8")
    result = shell("validate", "contacts.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown setting 'concurency'; did you mean 'concurrency'?" in result.stderr


# --- one reading of time-zone names ------------------------------------------------------------


def check(tmp_path: Path, text: str, **options: object) -> Checked:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    settings = Settings(from_number=FROM, script_id=SCRIPT, **options)  # type: ignore[arg-type]
    table = open_table(path, settings)
    (checked,) = [Validator(table, settings, now=NOW).check(src) for src in table]
    return checked


def test_lowercase_zone_reads_the_same_in_the_column_and_in_timezone(tmp_path: Path) -> None:
    """`australia/perth` in the timezone column and in --timezone both read 09:30 as Perth
    time (01:30 UTC), as `Australia/Perth` does."""
    in_column = check(
        tmp_path, "phone,scheduled_time,timezone\n0429069971,2030-03-02 09:30,australia/perth\n"
    )
    in_option = check(
        tmp_path, "phone,scheduled_time\n0429069971,2030-03-02 09:30\n", timezone="australia/perth"
    )
    for checked in (in_column, in_option):
        assert checked.error is None, checked.error
        assert checked.request is not None
        assert checked.request.scheduled_time == "2030-03-02T01:30:00Z"


@pytest.mark.parametrize(
    ("zone", "moved"), [("australia/perth", False), ("Australia/Sydney", True)]
)
def test_lowercase_zone_works_as_contact_timezone(tmp_path: Path, zone: str, moved: bool) -> None:
    """--contact-timezone australia/perth places a mobile (whose zone phonenumbers cannot tell)
    in Perth: 09:30 Perth is inside `daily 09:00-10:00` there, but 12:30 in Sydney is not."""
    checked = check(
        tmp_path,
        "phone,scheduled_time\n0429069971,2030-03-04T01:30:00Z\n",
        calling_window="daily 09:00-10:00",
        contact_timezone=zone,
    )
    assert checked.error is None, checked.error
    assert checked.time_moved is moved


def test_an_unknown_zone_gets_the_same_sentence_wherever_it_is_written(tmp_path: Path) -> None:
    """`Mars/Olympus` in the timezone column (read for a time or for a calling window), in
    --timezone and in --contact-timezone is refused with one sentence, naming where it was."""
    naive = "phone,scheduled_time,timezone\n0429069971,2030-03-02 09:30,Mars/Olympus\n"
    for_time = check(tmp_path, naive)
    aware = "phone,scheduled_time,timezone\n0429069971,2030-03-04T01:30:00Z,Mars/Olympus\n"
    for_window = check(tmp_path, aware, calling_window="daily 09:00-10:00")
    for row in (for_time, for_window):
        assert row.error_code == "unknown_timezone"
        assert row.error is not None and row.error.startswith(f"The timezone cell {NOT_A_ZONE}")

    plain = "phone\n0429069971\n"
    with pytest.raises(batchcall.InputError) as as_timezone:
        check(tmp_path, plain, timezone="Mars/Olympus")
    with pytest.raises(batchcall.UsageError) as as_contact:
        check(tmp_path, plain, calling_window="us-tcpa", contact_timezone="Mars/Olympus")
    assert str(as_timezone.value).startswith(f"--timezone {NOT_A_ZONE}")
    assert str(as_contact.value).startswith(f"--contact-timezone {NOT_A_ZONE}")
    assert as_timezone.value.exit_code == as_contact.value.exit_code == 2
