"""A server that echoes the API key in its error messages: the key is blanked (`***`) in
everything batchcall keeps or shows, the journal, results.csv, failed.csv, run.log, summary.json
and the terminal."""

from __future__ import annotations

import asyncio
import json

import httpx
from e2e_support import FROM, SCRIPT, au_mobiles, cli, read_results, write_contacts
from test_faults_servers import Request, TinyServer

from batchcall._dispatch import classify

KEY = "sk_live_echoed_SECRET_4f9a1c2b7d"
ROWS = 10


async def echo_the_key(request: Request, writer: asyncio.StreamWriter) -> None:
    """400 with a JSON message quoting the Authorization header for even phones; 404 with the
    header in a plain-text body for odd ones."""
    auth = request.headers.get("authorization", "")
    if int(request.json()["contact"]["phone_number"][-1]) % 2 == 0:  # type: ignore[index]
        status = 400
        body = json.dumps({"success": False, "message": f"bad request from '{auth}'"})
        kind = "application/json"
    else:
        status, body, kind = 404, f"no such team for Authorization: {auth}\n", "text/plain"
    payload = body.encode()
    writer.write(
        f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n\r\n"
        .encode() + payload
    )  # fmt: skip
    await writer.drain()


def test_a_key_echoed_by_the_server_is_stored_and_shown_redacted(tmp_path):
    """The server's messages are kept (they say what went wrong) with the key as `***`: no
    file in the run directory, and nothing printed by run or status, holds the key."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(ROWS))
    out = tmp_path / "run"
    with TinyServer(echo_the_key).running() as server:
        result = cli(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT, "--verbose",
            "--base-url", server.base_url, "--out", str(out), key=KEY, cwd=tmp_path,
        )  # fmt: skip
        as_json = cli("status", str(out), "--json", key=None, cwd=tmp_path)
        table = cli("status", str(out), key=None, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)

    rows = read_results(out / "results.csv")
    assert {r["error_code"] for r in rows} == {"rejected", "not_found"}
    assert all("***" in r["error"] for r in rows), [r["error"] for r in rows]

    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"journal.sqlite", "results.csv", "failed.csv", "run.log", "summary.json"} <= {
        p.name for p in files
    }
    for path in files:
        assert KEY.encode() not in path.read_bytes(), f"the key is in {path.name}"
    for shown in (result, as_json, table):
        assert KEY not in shown.stdout + shown.stderr


def test_redaction_happens_before_a_long_message_is_cut():
    """A plain-text error body is cut to 200 characters; the key is blanked first, so no
    prefix of it survives at the cut."""
    body = "x" * 190 + KEY + " and more"
    decision = classify(httpx.Response(400, text=body), secrets=(KEY,))
    assert KEY[:8] not in (decision.result.error or "")
    assert (decision.result.error or "").startswith("x" * 190 + "***")
