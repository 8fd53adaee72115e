"""The key and the phone list are safe: private run directories, no key anywhere, TLS verified.

End to end against the sandbox on loopback, with `python -m batchcall` in a child process.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from batchcall._cli import main
from batchcall._logs import run_logging
from batchcall.sandbox import SandboxConfig, start_sandbox

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv"
TEAM = ["--from-number", "+61291234567", "--script-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"]
KEY = "sk_live_Zq81TopSecretKeyValue_x7Kp"
WRONG_KEY = "sk_live_WrongButStillSecret_4Rt2"


@pytest.fixture
def sandbox() -> Iterator:
    # One row is rejected with a 400, so error messages from the server reach the reports too.
    with start_sandbox(SandboxConfig(api_key=KEY, reject_phones={"+61413186091"})) as server:
        yield server


def batchcall(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHCALL_", "VOXWORKS_"))}
    return subprocess.run(
        [sys.executable, "-m", "batchcall", *map(str, args)],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_run_directory_is_0700_and_nothing_in_it_or_printed_holds_the_key(sandbox, tmp_path):
    """With --verbose, a permissive umask, a 400, a wrong key and a resume, the key shows up
    in no file of the run directory (journal bytes included), in no output, and the run
    directory is readable by its owner only."""
    out = tmp_path / "run"
    common = ["--base-url", sandbox.base_url, *TEAM, "--verbose"]
    wrong = batchcall(
        "run", SAMPLE, "--out", out, *common, cwd=tmp_path, env={"VOXWORKS_API_KEY": WRONG_KEY},
        umask=0,
    )  # fmt: skip
    assert wrong.returncode == 3
    resumed = batchcall(
        "resume", out, "--verbose", cwd=tmp_path, env={"VOXWORKS_API_KEY": KEY}, umask=0
    )
    assert resumed.returncode == 1, resumed.stderr  # three invalid rows and one 400
    second = batchcall(
        "run", SAMPLE, "--force", "--json", *common, cwd=tmp_path, env={"VOXWORKS_API_KEY": KEY},
        umask=0,
    )  # fmt: skip
    assert json.loads(second.stdout)["counts"] == {"scheduled": 46, "invalid": 3, "failed": 1}

    run_dirs = [out, tmp_path / json.loads(second.stdout)["run_dir"]]
    for run_dir in run_dirs:
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        names = {p.name for p in files_under(run_dir)}
        assert {"journal.sqlite", "results.csv", "failed.csv", "summary.json", "run.log"} <= names
        for path in files_under(run_dir):
            data = path.read_bytes()
            assert KEY.encode() not in data, path
            assert WRONG_KEY.encode() not in data, path
        log = (run_dir / "run.log").read_text()
        assert "HTTP Request: POST" in log  # --verbose logs every request
        assert "+61413186091" not in log and "0413186091" not in log  # phones are masked
    for output in (wrong, resumed, second):
        for stream in (output.stdout, output.stderr):
            assert KEY not in stream and WRONG_KEY not in stream


def test_a_bearer_token_that_reaches_run_log_is_blanked(tmp_path):
    """Should any library log an Authorization header, run.log shows `Bearer ***`."""
    with run_logging(tmp_path, verbose=True) as path:
        logging.getLogger("httpx").info("headers: {'authorization': 'Bearer %s'}", KEY)
        logging.getLogger("batchcall").info("Authorization: Bearer %s", KEY)
    log = path.read_text()
    assert KEY not in log
    assert log.count("Bearer ***") == 2


def test_key_file_is_used_and_the_environment_is_not_needed(sandbox, tmp_path):
    """`--api-key-file PATH` supplies the key on its own."""
    key_file = tmp_path / "voxworks.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    result = batchcall(
        "run", SAMPLE, "--api-key-file", key_file, "--base-url", sandbox.base_url, *TEAM,
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["counts"]["scheduled"] == 46
    assert len(sandbox.calls()) == 46


@pytest.mark.parametrize("form", [["--api-key", KEY], [f"--api-key={KEY}"]])
def test_key_on_the_command_line_is_refused_without_echoing_it(sandbox, tmp_path, form):
    """A key passed as an option is refused with exit 2 and a pointer to the safe ways; the
    message does not repeat it and nothing is sent."""
    result = batchcall("run", SAMPLE, *form, "--base-url", sandbox.base_url, *TEAM, cwd=tmp_path)
    assert result.returncode == 2
    assert "VOXWORKS_API_KEY" in result.stderr and "--api-key-file" in result.stderr
    assert KEY not in result.stdout + result.stderr
    assert sandbox.stats()["requests"] == 0


def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(sandbox, tmp_path):
    """A key file holding two lines (say a pasted key plus a comment) exits 2 up front,
    instead of an HTTP error mid-run that would quote the header."""
    key_file = tmp_path / "voxworks.key"
    key_file.write_text(f"{KEY}\nsecond line {KEY}\n")
    result = batchcall(
        "run", SAMPLE, "--api-key-file", key_file, "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "one line of plain ASCII" in result.stderr
    assert KEY not in result.stdout + result.stderr
    assert sandbox.stats()["requests"] == 0


def test_http_client_is_created_with_tls_verification_on(sandbox, tmp_path, monkeypatch):
    """Every HTTP client the runner makes verifies certificates (verify=True)."""
    made: list[object] = []
    real_init = httpx.AsyncClient.__init__

    def spy(self: httpx.AsyncClient, *args: object, **kwargs: object) -> None:
        made.append(kwargs.get("verify", True))
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.AsyncClient, "__init__", spy)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        ["run", str(SAMPLE), "--base-url", sandbox.base_url, *TEAM, "-q"],
        env={"VOXWORKS_API_KEY": KEY},
    )
    assert result.exit_code == 1, result.output
    assert made == [True]


class _SelfSignedServer:
    """A TLS server on loopback with a certificate nobody trusts. It would answer a create-call
    request correctly, so the only reason a client fails is that it checked the certificate."""

    def __init__(self, directory: Path) -> None:
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.handshakes_refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    if tls.recv(65536):
                        self.requests += 1
                        body = b'{"call_id": "c1", "contact_id": "k1"}'
                        tls.sendall(
                            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                        )
            except (ssl.SSLError, OSError):
                self.handshakes_refused += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_server_with_an_untrusted_certificate_gets_no_request(tmp_path):
    """https:// to a server whose certificate does not verify: the TLS handshake is refused,
    no request (so no key) reaches it, and the row is not scheduled."""
    server = _SelfSignedServer(tmp_path)
    try:
        contacts = tmp_path / "one.csv"
        contacts.write_text("Phone\n+61412000001\n")
        result = batchcall(
            "run", contacts, "--base-url", f"https://127.0.0.1:{server.port}", *TEAM, "--json",
            cwd=tmp_path, env={"VOXWORKS_API_KEY": KEY},
        )  # fmt: skip
    finally:
        server.close()
    assert server.requests == 0
    # One refused handshake aborts the run: retrying cannot fix a certificate.
    assert server.handshakes_refused == 1
    assert result.returncode == 3
    assert "did not verify" in result.stderr
    data = json.loads(result.stdout)
    assert data["counts"].get("scheduled", 0) == 0
    with (tmp_path / data["results_csv"]).open(encoding="utf-8-sig", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["outcome"] == "pending"
