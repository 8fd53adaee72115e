"""End to end against the real sandbox server on loopback, in its own process."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml
from e2e_support import (
    FROM,
    SAMPLE,
    SCRIPT,
    SPEC,
    RecordingTransport,
    au_mobiles,
    read_results,
    write_contacts,
)

import batchcall


def _request_schema() -> dict:
    """The spec's request schema, made strict: no field outside it, no empty strings."""
    spec = yaml.safe_load(SPEC.read_text())
    schema = spec["components"]["schemas"]["CreatePhoneCallRequest"]

    def strict(node):
        if isinstance(node, dict):
            node = {k: strict(v) for k, v in node.items()}
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
            if node.get("type") == "string":
                node["minLength"] = 1
        return node

    return strict(schema)


def test_clean_file_is_scheduled_exactly_as_the_spec_says(make_sandbox, tmp_path):
    """40 clean rows against a hidden 20/s limit (a sandbox in its own process): all
    scheduled, exit 0, bodies per the spec, E.164 phones, and each row's call_id is the one
    the server created for that row."""
    server = make_sandbox(subprocess=True, limit=20, window=1.0, kind="fixed", headers="on_429")
    phones = au_mobiles(40)
    source = write_contacts(tmp_path / "clean.csv", phones)
    transport = RecordingTransport()
    summary = batchcall.run(
        source,
        from_number=FROM,
        script_id=SCRIPT,
        reports_dir=tmp_path / "reports",
        base_url=server.base_url,
        api_key=server.api_key,
        transport=transport,
    )
    assert summary.exit_code == 0
    assert summary.counts == {"scheduled": 40}

    schema = _request_schema()
    for body in transport.bodies:
        jsonschema.validate(body, schema)
    # A retry after a 429 re-sends the same body under the same key; one key per row.
    by_key: dict[str, dict] = {}
    for headers, body in zip(transport.headers, transport.bodies, strict=True):
        assert by_key.setdefault(headers["Idempotency-Key"], body) == body
    assert len(by_key) == 40
    sent = list(by_key.values())
    assert sorted(b["contact"]["phone_number"] for b in sent) == sorted(phones)
    assert all(b["objects"]["policy"]["number"].startswith("POL-") for b in sent)
    assert all("scheduled_time" not in b for b in sent)  # empty cell omitted, never ""

    created = {c["call_id"]: c for c in server.calls()}
    rows = read_results(Path(summary.results_csv))
    assert len(rows) == 40
    for row in rows:
        call = created[row["call_id"]]
        assert call["phone_number"] == row["phone_e164"] == phones[int(row["row"]) - 1]
        assert row["Mobile"] == "0" + phones[int(row["row"]) - 1][3:]  # input kept unchanged


def test_sample_data_reaches_every_row(tmp_path):
    """The README's first command on the sample as shipped: every valid row gets a call_id,
    every invalid one a code, 47 and 3 as the README says, and the run directory is private.

    The sample's times are fixed dates, so this is the one test that reads today's date on
    purpose: it fails once they pass, as the README's promise would, and a year earlier in
    CI's clock-ahead pass, which is the warning to move them on.
    """
    summary = batchcall.run(SAMPLE, sandbox=True, reports_dir=tmp_path / "reports")
    rows = read_results(Path(summary.results_csv))
    assert len(rows) == 50
    for row in rows:
        assert (row["outcome"] == "scheduled" and row["call_id"]) or (
            row["outcome"] == "invalid" and row["error_code"]
        )
    assert summary.counts == {"scheduled": 47, "invalid": 3}
    assert (Path(summary.run_dir).stat().st_mode & 0o777) == 0o700


def test_validate_reports_rows_as_valid_and_status_keeps_the_runs_timings(sample, tmp_path):
    """A dry run calls sendable rows `valid` (not `pending`) and exits 1 only for invalid
    rows; `status` recounts from the journal and keeps the run's own timings."""
    summary = batchcall.validate(
        sample, sandbox=False, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "reports"
    )
    assert (summary.exit_code, summary.counts) == (1, {"valid": 47, "invalid": 3})
    outcomes = {row["outcome"] for row in read_results(Path(summary.results_csv))}
    assert outcomes == {"valid", "invalid"}
    again = batchcall.status(summary.run_dir)
    assert again.counts == summary.counts and again.started_at == summary.started_at
    assert again.command == "status"
