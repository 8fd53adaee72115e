"""`batchcall sandbox` / `python -m batchcall.sandbox`, and the sandbox run as a child process."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner
from e2e_support import read_line, scrubbed_env

from batchcall.sandbox import SandboxConfig, start_sandbox
from batchcall.sandbox._cli import sandbox_command
from batchcall.sandbox._options import config_args
from batchcall.sandbox._server import READY_LINE

PATH = "/api/v1/create-phone-call"
EXAMPLE = {
    "from_number": "+61291234567",
    "script_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "contact": {"phone_number": "0429069971"},
}


def test_help_shows_a_worked_example_and_the_admin_endpoints():
    """`--help` teaches by example: a full command line, and where to look at created calls."""
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    assert "batchcall sandbox --port 8765 --limit 100 --window 2" in result.output
    assert "/_sandbox/calls" in result.output
    for option in ("--kind", "--fault-drop-after", "--other-client-share", "--reject-phone"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit-after", "5"], "limit_change_at and limit_after go together"),
        (["--kind", "leaky"], "'--kind': 'leaky' is not one of 'fixed', 'sliding', 'token_b"),
        (["--fault-503", "1.5"], "'--fault-503': 1.5 is not in the range 0<=x<=1"),
        (["--port", "-1"], "'--port': -1 is not in the range 0<=x<=65535"),
    ],
)
def test_bad_options_are_usage_errors(args, message):
    """Inconsistent or out-of-range settings stop the command with exit 2 before it listens,
    with an error that names the setting and what it may be."""
    result = CliRunner().invoke(sandbox_command, args, env={"VOXWORKS_API_KEY": "k"})
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert message in error


def test_module_entry_point_prints_a_throwaway_key_that_works():
    """Without VOXWORKS_API_KEY the server makes up a key, prints it, and accepts it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "batchcall.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=scrubbed_env(),
    )
    try:
        assert child.stdout is not None
        ready = read_line(child.stdout)
        key_line = read_line(child.stdout)
        assert ready.startswith(READY_LINE)
        base_url = ready[len(READY_LINE) :].strip()
        assert base_url.startswith("http://127.0.0.1:")
        key = key_line.split()[2]
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(base_url + PATH, json=EXAMPLE, headers=headers).status_code == 201
        assert httpx.post(base_url + PATH, json=EXAMPLE).status_code == 401
    finally:
        child.terminate()
        child.wait(10)


def test_a_child_process_sandbox_gets_the_whole_config(tmp_path):
    """`subprocess=True` passes every setting to the child: limit, blocked phones, database."""
    config = SandboxConfig(
        limit=2,
        window=60,
        kind="sliding",
        reject_phones={"+61412345678"},
        db_path=tmp_path / "child.sqlite",
    )
    sandbox = start_sandbox(config, subprocess=True)
    with sandbox:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        with httpx.Client(base_url=sandbox.base_url, headers=headers) as http:
            blocked = {**EXAMPLE, "contact": {"phone_number": "0412345678"}}
            assert http.post(PATH, json=blocked).status_code == 400
            assert http.post(PATH, json=EXAMPLE).status_code == 201
            refused = http.post(PATH, json=EXAMPLE)
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-limit"] == "2"
        assert len(sandbox.calls()) == 1
    with pytest.raises(httpx.ConnectError):  # stopped means stopped
        httpx.get(sandbox.base_url + "/_sandbox/stats")
    assert (tmp_path / "child.sqlite").exists()


def test_config_args_name_only_what_differs_from_the_defaults():
    """The child's command line carries the changed settings, and never the key."""
    args = config_args(SandboxConfig(api_key="sk_secret", limit=7, fault_503=0.5))
    assert args == ["--limit", "7", "--fault-503", "0.5"]
    assert "sk_secret" not in " ".join(args)
