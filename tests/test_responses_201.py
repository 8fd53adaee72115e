"""201 means created: a 201 is never sent again, and without a usable call_id it is `unknown`.

Against a tiny real HTTP server on 127.0.0.1 that answers 201 with bodies a broken API might
send; the runs use --retry-ambiguous, the one setting that re-sends rows whose outcome is
unclear, and still the server sees each row exactly once.
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, read_results, write_contacts
from test_faults_servers import TinyServer, respond

from batchcall._dispatch import classify

KEY = "sk_test_201_0123456789"
ROWS = 12


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ('{"success": true, "call_id": "", "contact_id": "c1", "status": "scheduled"}',
         "application/json", "missing_call_id"),
        ("<html>created!</html>", "text/html", "unreadable_response"),
        ('{"success": true, "contact_id": "c1", "status": "scheduled"}',
         "application/json", "missing_call_id"),
    ],
    ids=["empty-call-id", "not-json", "no-call-id"],
)  # fmt: skip
def test_a_201_without_a_usable_call_id_is_unknown_and_sent_once(
    tmp_path, body, content_type, code
):
    """Every row answered 201 without a call_id the run can keep ends `unknown` with an error
    code saying why (never `scheduled`, never `failed`), and even with --retry-ambiguous the
    server gets exactly one request per row: the call exists, a second would call again."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(ROWS))
    out = tmp_path / "run"
    with TinyServer(respond(201, body, content_type)).running() as server:
        result = cli(
            "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
            "--base-url", server.base_url, "--out", str(out), "--retry-ambiguous",
            key=KEY, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert len(server.requests) == ROWS
    assert set(server.keys().values()) == {1}
    rows = read_results(out / "results.csv")
    assert Counter((r["outcome"], r["error_code"], r["http_status"]) for r in rows) == {
        ("unknown", code, "201"): ROWS
    }
    assert "exists" in rows[0]["error"]


def test_a_201_with_a_call_id_but_odd_fields_keeps_the_call_id():
    """A 201 that has a call_id but lacks a field the spec lists (contact_id, success) is
    still a created call: the row is scheduled with the call_id it was given."""
    answer = httpx.Response(201, json={"call_id": "call_9", "status": "scheduled"})
    decision = classify(answer)
    assert (decision.result.state, decision.result.call_id) == ("scheduled", "call_9")
    assert decision.result.contact_id is None
    assert not decision.retry and not decision.ambiguous


@pytest.mark.parametrize(
    "body",
    [{"call_id": "   "}, {"call_id": 42}, ["call_1"], "call_1", None],
    ids=["blank", "number", "list", "string", "null"],
)
def test_a_201_whose_call_id_is_blank_or_not_a_string_is_unknown_and_final(body):
    """A call_id that is blank or not a string is no call_id: `unknown`, and final (neither
    retried nor ambiguous, so --retry-ambiguous leaves it alone)."""
    decision = classify(httpx.Response(201, content=json.dumps(body).encode()))
    assert (decision.result.state, decision.result.error_code) == ("unknown", "missing_call_id")
    assert not decision.retry and not decision.ambiguous
