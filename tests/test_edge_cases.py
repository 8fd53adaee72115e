"""Bad and odd input from a new operator: each gets exit 2 and one line naming what was found and
what was expected, never a traceback, nothing sent and no run directory in the way of a re-run.

Most cases run the command line in-process (click's runner) with the key set and the base URL
on a loopback port where nothing listens: had anything been sent, the rows would fail (exit 1)
instead of the run stopping with exit 2.
"""

from __future__ import annotations

import csv
import re
import signal
import textwrap
from pathlib import Path

import openpyxl
import pytest
from e2e_support import (
    FUTURE_YEAR,
    SCRIPT,
    TEAM,
    au_mobiles,
    python,
    read_line,
    read_results,
    write_contacts,
)

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there
ENV = {"VOXWORKS_API_KEY": "sk_test_edge_0123456789"}


@pytest.fixture
def batchcall(invoke):
    """`batchcall(ARGS)` runs `batchcall ARGS` in-process from tmp_path, with only the key set."""
    return lambda *args: invoke(*args, env=ENV)


def assert_refused(result, *fragments: str) -> None:
    """Exit 2, a one-line message holding every fragment, and no traceback anywhere."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith(("batchcall: ", "Usage: ")), message
    if message.startswith("batchcall: "):
        assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def sheet(path: Path, rows: list[list[str]]) -> Path:
    """An xlsx workbook whose first sheet holds `rows`."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Input files an operator really sends, each with a piece of the message it must get."""
    phones = au_mobiles(2000)
    good = write_contacts(tmp / "good.csv", phones[:3])
    lines = ["Phone,First Name"] + [f"{p},Ann" for p in phones]
    far_down = tmp / "far_down.csv"
    # 0x81 is undefined in cp1252 and invalid UTF-8; it sits past the delimiter sniffer's look.
    far_down.write_bytes(("\n".join(lines) + "\n").encode() + b"+61412000001,Zo\x81\n")
    book = sheet(tmp / "book.xlsx", [["Phone"], ["0412000001"]])
    cases = {
        "missing": (tmp / "missing.csv", "does not exist"),
        "directory": (tmp, "is not a file"),
        "empty": (tmp / "empty.csv", "the file is empty"),
        "header only": (tmp / "header.csv", "no data rows"),
        "header only xlsx": (sheet(tmp / "header.xlsx", [["Phone", "First Name"]]), "no data rows"),
        "json": (tmp / "contacts.json", "Use CSV, TSV, TXT, XLSX"),
        "xlsx named csv": (tmp / "book.csv", "XLSX or ODS workbook with a .csv name"),
        "csv named xlsx": (tmp / "text.xlsx", "if it is a CSV, rename it to .csv"),
        "random bytes": (tmp / "noise.csv", "Is it a binary file?"),
        "ole2 named xlsx": (tmp / "locked.xlsx", "password-protected"),
        "nul byte": (tmp / "nul.csv", "looks binary"),
        "bad byte far down": (far_down, "byte 0x81 at offset"),
    }
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "header.csv").write_text("Phone,First Name\n\n")
    (tmp / "contacts.json").write_text("[]")
    (tmp / "book.csv").write_bytes(book.read_bytes())
    (tmp / "text.xlsx").write_bytes(good.read_bytes())
    (tmp / "noise.csv").write_bytes(bytes(range(256)) * 8)
    (tmp / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024)
    (tmp / "nul.csv").write_bytes(b"Phone,First Name\n0412000001,A\x00B\n")
    return cases


CASES = [
    "missing",
    "directory",
    "empty",
    "header only",
    "header only xlsx",
    "json",
    "xlsx named csv",
    "csv named xlsx",
    "random bytes",
    "ole2 named xlsx",
    "nul byte",
    "bad byte far down",
]


@pytest.mark.parametrize("case", CASES)
def test_unusable_input_files_stop_the_run_before_anything_is_sent(batchcall, tmp_path, case):
    """A missing, empty, header-only, mislabelled, binary or undecodable file exits 2 with a
    line that names the file's problem, sends nothing and leaves no run directory behind."""
    path, fragment = bad_files(tmp_path)[case]
    result = batchcall("run", str(path), *TEAM, "--base-url", NOWHERE)
    assert_refused(result, fragment)
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--sheet", "Leads"], ["--sheet 'Leads'", "has no sheets"]),
        (["--encoding", "nonsense"], ["Unknown --encoding 'nonsense'"]),
        (["--encoding", "ascii"], ["is not ascii text", "Check the --encoding"]),
        (["--timezone", "Mars/Base"], ["--timezone 'Mars/Base'", "IANA"]),
        (["--region", "XX"], ["--region 'XX'", "two-letter country code"]),
        (["--date-format", "garbage"], ["--date-format 'garbage'", "no % directive"]),
        (["--date-format", "%d/%m/%Q"], ["'Q' is a bad directive", "e.g. '%d/%m/%Y %H:%M'"]),
        (["--max-rate", "0"], ["max_rate = 0.0 (from --max-rate)", "greater than 0"]),
        (["--max-rate", "-5"], ["max_rate = -5.0 (from --max-rate)", "greater than 0"]),
        (["--concurrency", "0"], ["concurrency = 0 (from --concurrency)"]),
        (["--reports-dir", "a_file"], ["Cannot create the run directory a_file"]),
        (["--reports-dir", "a_file/reports"], ["Cannot create the run directory a_file"]),
        (["--out", "a_file"], ["Cannot create the run directory a_file", "a file is in the way"]),
    ],
)
def test_bad_options_exit_2_with_a_line_naming_the_value(batchcall, tmp_path, extra, fragments):
    """A wrong option value, a CSV given --sheet or a reports directory that cannot be made
    exits 2 with one line quoting the value, before any request or run directory."""
    contacts = tmp_path / "contacts.csv"
    # An accent makes the file UTF-8 that --encoding ascii cannot read.
    contacts.write_text(
        f"Phone,First Name,Scheduled At\n0412000001,Zoë,02/03/{FUTURE_YEAR} 09:30\n"
    )
    (tmp_path / "a_file").write_text("not a directory\n")
    result = batchcall("run", str(contacts), *TEAM, "--base-url", NOWHERE, *extra)
    assert_refused(result, *fragments)
    assert not (tmp_path / "reports").exists()


def test_from_number_that_is_not_a_phone_is_refused(batchcall, tmp_path):
    """`--from-number notaphone` exits 2 and asks for E.164."""
    contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(2))
    result = batchcall("run", str(contacts), "--from-number", "notaphone", "--script-id", SCRIPT)
    assert_refused(result, "--from-number 'notaphone'", "E.164")


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("max_rate = \n", "Cannot read config"),
        ("max_ratee = 3\n", "unknown setting 'max_ratee'"),
    ],
)
def test_broken_batchcall_toml_is_named_with_its_problem(batchcall, tmp_path, toml, fragment):
    """A batchcall.toml with a syntax error or a misspelt key exits 2 and says which."""
    (tmp_path / "batchcall.toml").write_text(toml)
    contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(2))
    result = batchcall("validate", str(contacts), *TEAM)
    assert_refused(result, fragment)


def test_directories_that_are_not_runs_are_refused_by_resume_retry_and_status(batchcall, tmp_path):
    """resume, retry and status on an empty directory exit 2 and ask whether it is a run."""
    (tmp_path / "empty").mkdir()
    for command in ("resume", "retry", "status"):
        result = batchcall(command, str(tmp_path / "empty"))
        assert_refused(result, "No journal at", "is this a batchcall run directory?")


def test_a_validate_directory_is_not_a_run_to_retry_nor_an_out_to_reuse(batchcall, tmp_path):
    """`retry` on a dry run says to start a real one, and `--out` at an existing run points
    to `resume` instead of writing over it."""
    contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(3))
    dry = tmp_path / "dry"
    assert batchcall("validate", str(contacts), *TEAM, "--out", str(dry)).exit_code == 0
    assert_refused(batchcall("retry", str(dry)), "is a dry run (validate)")
    result = batchcall("run", str(contacts), *TEAM, "--out", str(dry))
    assert_refused(result, "already holds a run", f"batchcall resume {dry}")


def test_a_megabyte_cell_is_read_and_kept_in_the_results(batchcall, tmp_path):
    """A notes cell of 1 MB, beyond the csv module's default cell limit, is read, and passes
    through to results.csv unchanged."""
    phones = au_mobiles(2)
    notes = "n" * 1_000_000
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"Phone,Notes\n{phones[0]},{notes}\n{phones[1]},short\n")
    result = batchcall("validate", str(contacts), *TEAM, "--out", "dry")
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "dry" / "results.csv")
    assert [(r["outcome"], len(r["Notes"])) for r in rows] == [("valid", 1_000_000), ("valid", 5)]


def test_only_failed_on_a_trimmed_results_csv_names_the_missing_columns(batchcall, tmp_path):
    """A results.csv whose outcome columns were deleted in Excel is refused with --only-failed,
    and the message lists what is missing."""
    contacts = write_contacts(tmp_path / "contacts.csv", au_mobiles(3))
    batchcall("validate", str(contacts), *TEAM, "--out", "dry")
    with (tmp_path / "dry" / "results.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    drop = {rows[0].index(name) for name in ("outcome", "call_id")}
    trimmed = tmp_path / "trimmed.csv"
    with trimmed.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([c for i, c in enumerate(r) if i not in drop] for r in rows)
    result = batchcall(
        "run",
        str(trimmed),
        *TEAM,
        "--only-failed",
        "--base-url",
        NOWHERE,
        "--out",
        "again",
    )
    assert_refused(result, "lacks its outcome columns (call_id, outcome)")
    assert not (tmp_path / "again").exists()


# The real command line, with the loader made to announce, on stdout, that it is one chunk into
# validating the file, and to wait for a line on stdin before it reads on: the test's Ctrl-C
# then lands mid-validation on any machine, however fast.
VALIDATE_HELD_MIDWAY = textwrap.dedent(
    """
    import sys
    from batchcall import _prepare as prepare
    from batchcall._cli import main

    real = prepare.chunks

    def chunks(planned, size=prepare.CHUNK):
        for n, chunk in enumerate(real(planned, size)):
            if n == 1:
                print("validating", flush=True)
                sys.stdin.readline()
            yield chunk

    prepare.chunks = chunks
    main(args=sys.argv[1:], prog_name="batchcall")
    """
)


def test_ctrl_c_during_validate_exits_130_without_offering_resume(tmp_path):
    """Ctrl-C while a big file is being validated exits 130 with a line that says how far
    validation got, that nothing was sent and to validate again; it does not point at
    `resume`, which refuses dry runs. The partial report it names holds the rows checked."""
    rows = 20_000
    contacts = tmp_path / "big.csv"
    with contacts.open("w") as f:
        f.write("Phone,First Name\n")
        f.writelines(f"+614{10_000_000 + i},N{i}\n" for i in range(rows))
    child = python(VALIDATE_HELD_MIDWAY, "validate", contacts, *TEAM, "--out", "dry", "--quiet",
                   cwd=tmp_path)  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    assert read_line(child.stdout) == "validating\n"
    child.send_signal(signal.SIGINT)
    child.stdin.write("go on\n")
    child.stdin.flush()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert out == ""
    (message,) = err.splitlines()
    stopped = re.fullmatch(
        r"batchcall: Interrupted \(SIGINT\): validation stopped after (\d+) rows and nothing was "
        r"sent\. "
        r"The partial report is in dry; run `batchcall validate` again to check the whole file\.",
        message,
    )
    assert stopped, message
    checked = int(stopped[1])
    assert 0 < checked < rows
    assert len(read_results(tmp_path / "dry" / "results.csv")) == checked


@pytest.mark.parametrize("dry_run", [True, False])
def test_ctrl_c_before_the_run_starts_leaves_nothing_behind(tmp_path, monkeypatch, dry_run):
    """Ctrl-C in the instant between creating the run directory and the run's own signal
    handler: nothing was planned or sent, so the empty directory is removed (it would
    otherwise block a re-run of the same file) and the message says to run it again."""
    import batchcall
    from batchcall import _runner as runner
    from batchcall._errors import InterruptedRun

    contacts = tmp_path / "c.csv"
    contacts.write_text("Phone\n+61412000001\n")

    def interrupted(coroutine):
        coroutine.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.asyncio, "run", interrupted)
    with pytest.raises(InterruptedRun) as caught:
        batchcall.run(
            contacts, from_number="+61291234567", script_id="s", dry_run=dry_run, api_key="k",
            base_url="http://127.0.0.1:9", reports_dir=tmp_path / "r",
        )  # fmt: skip
    command = "validate" if dry_run else "run"
    assert f"Run `batchcall {command}` again" in str(caught.value)
    assert "resume" not in str(caught.value)
    assert list((tmp_path / "r").iterdir()) == []
