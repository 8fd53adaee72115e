"""The key and the phone list are safe: private run directories, no key anywhere, TLS verified.

End to end against the sandbox on loopback, with the installed `batchcall` in a child process.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from e2e_support import TEAM, cli, read_results

from batchcall._logs import run_logging

KEY = "sk_live_Zq81TopSecretKeyValue_x7Kp"
WRONG_KEY = "sk_live_WrongButStillSecret_4Rt2"
REJECTED = "+61413186091"  # a sample row the server refuses with a 400


@pytest.fixture
def sandbox(make_sandbox):
    """A sandbox on KEY that rejects one sample row, so the server's own error messages
    reach the reports too."""
    return make_sandbox(api_key=KEY, reject_phones={REJECTED})


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_run_directory_is_0700_and_nothing_in_it_or_printed_holds_the_key(
    sandbox, sample, tmp_path
):
    """With --verbose, a permissive umask, a 400, a wrong key and a resume, the key shows up
    in no file of the run directory (journal bytes included), in no output, and the run
    directory is readable by its owner only."""
    out = tmp_path / "run"
    common = ["--base-url", sandbox.base_url, *TEAM, "--verbose"]
    wrong = cli(
        "run", sample, "--out", out, *common, cwd=tmp_path, key=WRONG_KEY,
        umask=0,
    )  # fmt: skip
    assert wrong.returncode == 3
    resumed = cli("resume", out, "--verbose", cwd=tmp_path, key=KEY, umask=0)
    assert resumed.returncode == 1, resumed.stderr  # three invalid rows and one 400
    second = cli(
        "run", sample, "--force", "--json", *common, cwd=tmp_path, key=KEY,
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
        assert REJECTED not in log and "0413186091" not in log  # phones are masked
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


def test_key_file_is_used_and_the_environment_is_not_needed(sandbox, sample, tmp_path):
    """`--api-key-file PATH` supplies the key on its own."""
    key_file = tmp_path / "voxworks.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    result = cli(
        "run", sample, "--api-key-file", key_file, "--base-url", sandbox.base_url, *TEAM,
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["counts"]["scheduled"] == 46
    assert len(sandbox.calls()) == 46


@pytest.mark.parametrize("form", [["--api-key", KEY], [f"--api-key={KEY}"]])
def test_key_on_the_command_line_is_refused_without_echoing_it(sandbox, sample, tmp_path, form):
    """A key passed as an option is refused with exit 2 and a pointer to the safe ways; the
    message does not repeat it and nothing is sent."""
    result = cli("run", sample, *form, "--base-url", sandbox.base_url, *TEAM, cwd=tmp_path)
    assert result.returncode == 2
    assert "VOXWORKS_API_KEY" in result.stderr and "--api-key-file" in result.stderr
    assert KEY not in result.stdout + result.stderr
    assert sandbox.stats()["requests"] == 0


def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(sandbox, sample, tmp_path):
    """A key file holding two lines (say a pasted key plus a comment) exits 2 up front,
    instead of an HTTP error mid-run that would quote the header."""
    key_file = tmp_path / "voxworks.key"
    key_file.write_text(f"{KEY}\nsecond line {KEY}\n")
    result = cli(
        "run", sample, "--api-key-file", key_file, "--base-url", sandbox.base_url, *TEAM,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "one line of plain ASCII" in result.stderr
    assert KEY not in result.stdout + result.stderr
    assert sandbox.stats()["requests"] == 0


class _SelfSignedServer:
    """A TLS server on loopback with a certificate nobody trusts. It would answer a create-call
    request correctly, so the only reason a client fails is that it checked the certificate."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("openssl") is None:
            pytest.fail("the self-signed certificate is made by the openssl command: install it")
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


def test_a_server_with_an_untrusted_certificate_gets_no_request(tmp_path):
    """https:// to a server whose certificate does not verify: the TLS handshake is refused,
    no request (so no key) reaches it, and the row is not scheduled."""
    server = _SelfSignedServer(tmp_path)
    try:
        contacts = tmp_path / "one.csv"
        contacts.write_text("Phone\n+61412000001\n")
        result = cli(
            "run", contacts, "--base-url", f"https://127.0.0.1:{server.port}", *TEAM, "--json",
            cwd=tmp_path, key=KEY,
        )  # fmt: skip
    finally:
        server.close()
    assert server.requests == 0
    # One refused handshake aborts the run: retrying cannot fix a certificate.
    assert server.handshakes_refused == 1
    assert result.returncode == 3
    assert "did not verify" in result.stderr
    data = json.loads(result.stdout)
    assert data["counts"] == {"pending": 1}
    (row,) = read_results(tmp_path / data["results_csv"])
    assert row["outcome"] == "pending"
