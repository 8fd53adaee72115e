"""The command line as a nightly job and an operator see it: exit codes, JSON, messages, help.

Most tests run the installed `batchcall` script in a child process against the real sandbox on
loopback, with the key in the child's environment, so stdout, stderr and exit codes are the
real ones.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from e2e_support import (
    ROOT,
    TEAM,
    au_mobiles,
    cli,
    popen,
    read_results,
    scrubbed_env,
    wait_until,
    write_contacts,
)

from batchcall._cli import main

ANSI = re.compile(r"\x1b\[")


def contacts(path: Path, rows: int) -> Path:
    """`rows` distinct, valid Australian mobiles, as an operator exports them."""
    return write_contacts(path, au_mobiles(rows))


def test_wrong_key_aborts_with_exit_3_rows_stay_pending_and_resume_finishes_them(sandbox, tmp_path):
    """A 401 stops a 400-row run within a handful of requests; `resume` with the right key
    then schedules every row, each exactly once."""
    source = contacts(tmp_path / "contacts.csv", 400)
    out = tmp_path / "run"
    wrong = cli(
        "run", source, *TEAM, "--base-url", sandbox.base_url, "--out", out,
        cwd=tmp_path, key="sk_wrong_key",
    )  # fmt: skip
    assert wrong.returncode == 3, wrong.stderr
    assert sandbox.stats()["requests"] <= 40
    assert sandbox.calls() == []
    assert "401" in wrong.stderr and f"batchcall resume {out}" in wrong.stderr
    assert {row["outcome"] for row in read_results(out / "results.csv")} == {"pending"}
    assert json.loads((out / "summary.json").read_text())["counts"] == {"pending": 400}

    right = cli("resume", out, "--json", cwd=tmp_path, key=sandbox.api_key)
    assert right.returncode == 0, right.stderr
    assert json.loads(right.stdout)["counts"] == {"scheduled": 400}
    phones = [call["phone_number"] for call in sandbox.calls()]
    assert len(phones) == len(set(phones)) == 400


def test_file_without_phone_column_exits_2_sends_nothing_and_names_what_it_looked_for(
    sandbox, tmp_path
):
    """A contact list with no phone column is refused before a single request leaves."""
    source = tmp_path / "contacts.csv"
    source.write_text("Name,Email\nAnn,ann@example.com\nBo,bo@example.com\n")
    result = cli(
        "run", source, *TEAM, "--base-url", sandbox.base_url, cwd=tmp_path, key=sandbox.api_key
    )
    assert result.returncode == 2
    assert sandbox.stats()["requests"] == 0
    message = result.stderr.lower()
    assert "phone column" in message
    for alias in ("phone", "mobile", "tel", "phone number"):
        assert repr(alias) in message
    assert "'name', 'email'" in message  # what it found


@pytest.mark.parametrize("how", ["option", "environment"])
def test_plain_http_to_a_remote_host_exits_2_before_any_network_activity(
    how, invoke, tmp_path, monkeypatch
):
    """`--base-url http://api.example.invalid` (or VOXWORKS_BASE_URL) is refused with exit 2:
    no name is looked up, no socket connects, and no run directory is made."""
    touched: list[object] = []

    def no_network(*args: object, **kwargs: object) -> None:
        touched.append(args)
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    source = contacts(tmp_path / "contacts.csv", 3)
    url = "http://api.example.invalid"
    args = ["run", str(source), *TEAM]
    env = {"VOXWORKS_API_KEY": "sk_any"}
    if how == "option":
        args += ["--base-url", url]
    else:
        env["VOXWORKS_BASE_URL"] = url
    result = invoke(*args, env=env)
    assert result.exit_code == 2, result.output
    assert "Refusing plain http:// to api.example.invalid" in result.stderr
    assert "https://" in result.stderr
    assert touched == []
    assert not (tmp_path / "reports").exists()


def test_json_prints_one_object_on_stdout_and_no_bar_on_a_non_tty_stderr(sandbox, sample, tmp_path):
    """`--json` output parses as one JSON object holding counts, codes, timings and rates;
    with stderr a pipe, nothing of a progress bar is written."""
    result = cli(
        "run", sample, "--json", "--verbose", "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path, key=sandbox.api_key,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["counts"] == {"scheduled": 47, "invalid": 3}
    assert data["errors"] == {"missing_phone": 1, "invalid_phone": 1, "damaged_phone": 1}
    assert data["exit_code"] == 1
    assert Path(tmp_path / data["run_dir"]).is_dir()
    assert data["requests"] == 47 and data["throttled"] == 0
    assert data["seconds"] > 0 and data["rate"] > 0 and data["limiter"]
    assert "\r" not in result.stderr and not ANSI.search(result.stderr)


def test_json_errors_are_still_one_object_on_stdout(sandbox, sample, tmp_path):
    """A job parsing stdout gets JSON even when the run fails: a usage error (exit 2) gives
    the error and code, an aborted run (exit 3) its counts too."""
    for bad, named in [("0", "max_rate"), ("fast", "--max-rate")]:
        usage = cli("run", sample, "--json", "--max-rate", bad, *TEAM, cwd=tmp_path)
        assert usage.returncode == 2
        assert json.loads(usage.stdout)["exit_code"] == 2
        assert named in json.loads(usage.stdout)["error"]

    aborted = cli(
        "run", sample, "--json", "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path, key="sk_wrong_key",
    )  # fmt: skip
    assert aborted.returncode == 3
    data = json.loads(aborted.stdout)
    assert data["exit_code"] == 3 and data["counts"]["pending"] == 47
    assert "batchcall resume" in data["message"]


def test_summary_table_shows_errors_by_code_and_report_paths(sandbox, sample, tmp_path):
    """Without --json the operator sees counts, the error breakdown and where the files are."""
    result = cli(
        "run", sample, "--base-url", sandbox.base_url, *TEAM, cwd=tmp_path, key=sandbox.api_key
    )
    assert result.returncode == 1
    table = result.stdout
    assert re.search(r"scheduled\s+47", table) and re.search(r"invalid\s+3", table)
    for code in ("missing_phone", "invalid_phone", "damaged_phone"):
        assert re.search(rf"{code}\s+1", table)
    run_dir = next((tmp_path / "reports").iterdir()).relative_to(tmp_path)
    for name in ("results.csv", "failed.csv", "summary.json", "run.log"):
        assert str(run_dir / name) in table
        assert (tmp_path / run_dir / name).is_file()


def test_quiet_prints_nothing_but_keeps_the_exit_code(sandbox, sample, tmp_path):
    """`--quiet` leaves stdout and stderr empty for a run that went through, and the exit
    code still says some rows were not scheduled."""
    result = cli(
        "run", sample, "-q", "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path, key=sandbox.api_key,
    )  # fmt: skip
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", "")
    assert len(sandbox.calls()) == 47


def test_failed_csv_validates_again_with_the_same_error_codes(sandbox, sample, tmp_path):
    """`batchcall validate <run>/failed.csv` reads our own file back: the rows that were
    invalid are invalid again, with the same codes."""
    first = cli(
        "run", sample, "--json", "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path, key=sandbox.api_key,
    )  # fmt: skip
    failed_csv = tmp_path / json.loads(first.stdout)["failed_csv"]
    before = {r["Phone"]: r["error_code"] for r in read_results(failed_csv)}
    assert sorted(before.values()) == ["damaged_phone", "invalid_phone", "missing_phone"]

    again = cli("validate", failed_csv, *TEAM, "--json", cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    data = json.loads(again.stdout)
    assert data["counts"] == {"invalid": 3}
    after = {r["Phone"]: r["error_code"] for r in read_results(tmp_path / data["results_csv"])}
    assert after == before


def test_ctrl_c_exits_130_prints_the_resume_command_and_resume_completes(make_sandbox, tmp_path):
    """SIGINT mid-run stops sending, exits 130 and says how to resume; the journal is intact,
    and `resume` sends the rest with nobody called twice."""
    server = make_sandbox(latency=0.2)
    source = contacts(tmp_path / "contacts.csv", 300)
    out = tmp_path / "run"
    child = popen(
        "run", source, *TEAM, "--base-url", server.base_url, "--out", out, "--concurrency", "4",
        cwd=tmp_path, key=server.api_key,
    )  # fmt: skip
    wait_until(lambda: server.stats()["created"] >= 8, what="8 calls created", process=child)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert f"batchcall resume {out}" in stderr
    sent = len(server.calls())
    assert 8 <= sent < 300

    status = cli("status", out, "--json", cwd=tmp_path)
    counts = json.loads(status.stdout)["counts"]
    assert counts.get("scheduled", 0) == sent
    assert counts["pending"] == 300 - sent

    server.configure(latency=0.0)
    resumed = cli("resume", out, "--json", cwd=tmp_path, key=server.api_key)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["counts"] == {"scheduled": 300}
    phones = [call["phone_number"] for call in server.calls()]
    assert len(phones) == len(set(phones)) == 300


def test_python_api_returns_the_same_summary_the_cli_prints(sandbox, sample, tmp_path, monkeypatch):
    """`batchcall.run(...)` is the CLI without the shell: it returns the summary whose
    exit_code and counts --json prints, and raises the error whose exit_code the CLI exits
    with."""
    import batchcall

    monkeypatch.setenv("VOXWORKS_API_KEY", sandbox.api_key)
    options = dict(base_url=sandbox.base_url, from_number=TEAM[1], script_id=TEAM[3],
                   reports_dir=tmp_path / "reports")  # fmt: skip
    summary = batchcall.run(sample, **options)
    assert summary.exit_code == 1
    assert summary.counts == {"scheduled": 47, "invalid": 3}
    assert summary.errors == {"missing_phone": 1, "invalid_phone": 1, "damaged_phone": 1}
    printed = cli("status", summary.run_dir, "--json", cwd=tmp_path)
    assert json.loads(printed.stdout)["counts"] == summary.counts
    assert printed.returncode == summary.exit_code
    monkeypatch.setenv("VOXWORKS_API_KEY", "sk_wrong_key")
    with pytest.raises(batchcall.AuthError) as caught:
        batchcall.run(sample, force=True, **options)
    assert caught.value.exit_code == 3 and caught.value.run_dir


def test_python_m_batchcall_is_the_same_command_line(tmp_path):
    """`python -m batchcall` is the installed `batchcall` script under another name: the
    same help, the same version."""
    for args in (["--help"], ["--version"]):
        script = cli(*args, cwd=tmp_path)
        module = subprocess.run(
            [sys.executable, "-m", "batchcall", *args], cwd=tmp_path, env=scrubbed_env(),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert module.returncode == script.returncode == 0
        assert module.stdout == script.stdout
        assert script.stdout.startswith("Usage: batchcall" if args == ["--help"] else "batchcall")


def _commands() -> list[str]:
    return sorted(main.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_a_worked_example(command):
    """`batchcall COMMAND --help` shows a worked example of that very command."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"batchcall {command} " in result.output


def test_every_command_and_option_is_documented_in_the_readme_or_the_help():
    """No command or option exists that a user cannot find in the README or in --help."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    top = CliRunner().invoke(main, ["--help"], terminal_width=100).output
    missing = []
    for name, command in main.commands.items():
        if name not in readme and name not in top:
            missing.append(name)
        help_text = CliRunner().invoke(main, [name, "--help"], terminal_width=100).output
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("--") and opt not in readme and opt not in help_text:
                    missing.append(f"{name} {opt}")
            if isinstance(param, click.Option) and param.opts[0] != "--help":
                assert param.help, f"{name} {param.opts[0]} has no help text"
    assert missing == []


def test_sandbox_runs_say_so_on_stderr_and_keep_json_clean(sample, tmp_path):
    """`run --sandbox` tells the operator nobody is really called (on stderr), while stdout
    with --json is still exactly one JSON object."""
    done = cli("run", sample, "--sandbox", "--json", "--reports-dir", tmp_path / "r", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["counts"] == {"scheduled": 47, "invalid": 3}
    assert "embedded local sandbox; nobody is called" in done.stderr
