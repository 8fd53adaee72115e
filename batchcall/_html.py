"""report.html: one self-contained page that shows what a run did, and what to do next.

Built from the run's summary, its journal's meta (settings, the requests over time the sending
passes stored) and the `Digest` gathered in the pass that writes results.csv; the markup is in
templates/report.html.j2. The page fetches nothing: its style is inline, its charts are SVG
drawn here (`_charts`), each with a table beside it, and it has no script. So it opens from
disk with no network, and its size does not grow with the run.

Phones are masked (`_mask`); the API key is in nothing the page is built from, and settings
whose name speaks of a secret are left out all the same.
"""

from __future__ import annotations

import functools
import json
import platform
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from ._charts import hours_chart, open_hours, requests_chart, weekdays_chart
from ._digest import FIXES, PLAN_DAYS, Digest, Problem, digest_for
from ._journal import Journal
from ._mask import mask_phone
from ._report import COUNT_ORDER, PAGE_META, atomic_writer
from ._timeline import Timeline
from ._version import __version__

# While a run goes its page is rewritten this often, and reloads itself as often.
LIVE_EVERY = 30.0
SECRET_WORDS = ("key", "token", "password", "secret")
EXIT_MEANINGS = {
    0: "Every row was scheduled, or skipped by a policy.",
    1: "Done, but some rows are invalid, failed or unknown: they are in failed.csv.",
    2: "A usage, config or input error; nothing was sent.",
    3: "Aborted: rows are left unsent, pending for `batchcall resume`.",
    129: "Stopped by SIGHUP; the journal is intact, `batchcall resume` continues.",
    130: "Interrupted with Ctrl-C; the journal is intact, `batchcall resume` continues.",
    143: "Stopped by SIGTERM; the journal is intact, `batchcall resume` continues.",
}


@functools.cache
def _environment() -> jinja2.Environment:
    # Once per process: compiling the template costs more than rendering it.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("batchcall", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_html(
    path: Path,
    summary: Mapping[str, Any],
    meta: Mapping[str, Any],
    digest: Digest,
    timeline: Timeline,
    *,
    live: bool = False,
) -> Path:
    """Render the page and write it to `path`, atomically like every report."""
    html = render(summary, meta, digest, timeline, live=live)
    with atomic_writer(path) as out:
        out.write(html)
    return path


def render(
    summary: Mapping[str, Any],
    meta: Mapping[str, Any],
    digest: Digest,
    timeline: Timeline,
    *,
    live: bool = False,
) -> str:
    """The page's HTML, from the run's summary, its journal's meta and the pass's digest;
    `live`: a page of a run still going, which reloads itself every LIVE_EVERY seconds."""
    settings = meta.get("settings") or {}
    dry_run = bool(meta.get("dry_run"))
    counts = summary.get("counts", {})
    context = {
        "s": summary,
        "dry_run": dry_run,
        "sandbox": bool(meta.get("sandbox")),
        "name": Path(summary.get("run_dir") or ".").name,
        "counts": [(state, counts[state]) for state in COUNT_ORDER if counts.get(state)],
        "exit_meaning": EXIT_MEANINGS.get(summary.get("exit_code", 0), ""),
        "next_steps": next_steps(summary, dry_run),
        "problems": _problems(digest),
        "sending": _sending(summary, timeline, settings),
        "ringing": _ringing(digest, summary.get("plan")),
        "run": _run(summary, meta, settings),
        "live": live,
        "unmasked": bool(meta.get("report_unmasked")),
        "reload": int(LIVE_EVERY),
    }
    return _environment().get_template("report.html.j2").render(**context)


def next_steps(summary: Mapping[str, Any], dry_run: bool) -> list[str]:
    """What to run next, most urgent first."""
    counts, run_dir = summary.get("counts", {}), summary.get("run_dir")
    if summary.get("exit_code") is None:
        return ["Wait: the run is still going."]
    steps = []
    if dry_run:
        if counts.get("invalid"):
            steps.append(f"Fix the rows in {run_dir}/failed.csv (its error column says how).")
        steps.append("Send it: `batchcall run INPUT` with the same options.")
        return steps
    if counts.get("pending") or counts.get("sending"):
        steps.append(f"Continue the run: `batchcall resume {run_dir}`.")
    if counts.get("failed"):
        steps.append(f"Send the failed rows again: `batchcall retry {run_dir}`.")
    if counts.get("unknown"):
        steps.append(
            "Check the unknown rows' calls in Voxworks, then, if they do not exist: "
            f"`batchcall retry {run_dir} --include-unknown`."
        )
    if counts.get("invalid"):
        steps.append(
            f"Fix the invalid rows in {run_dir}/failed.csv (its error column says how), then "
            f"run that file: `batchcall run {run_dir}/failed.csv`."
        )
    return steps or ["Nothing: every row is done."]


def _problems(digest: Digest) -> list[dict[str, Any]]:
    ordered = sorted(digest.problems.values(), key=lambda p: (-p.count, p.code))
    return [
        {
            "code": p.code,
            "count": p.count,
            "fix": FIXES.get(p.code) or (p.examples[0][2] if p.examples else ""),
            "examples": p.examples,
        }
        for p in ordered
    ]


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _sending(
    summary: Mapping[str, Any], timeline: Timeline, settings: Mapping[str, Any]
) -> dict[str, Any]:
    limiter = summary.get("limiter") or {}
    bins = timeline.bins.values()
    return {
        "chart": requests_chart(timeline),
        "requests": timeline.requests,
        "throttled": sum(counts[1] for counts in bins),
        "p50": _ms(timeline.percentile(0.5)),
        "p95": _ms(timeline.percentile(0.95)),
        "limit": limiter.get("limit"),
        "window": limiter.get("window"),
        "learned_rate": limiter.get("rate"),
        "achieved_rate": summary.get("rate"),
        "max_rate": settings.get("max_rate"),
    }


def _ringing(digest: Digest, plan: Mapping[str, Any] | None) -> dict[str, Any]:
    window = (digest.settings or {}).get("calling_window")
    days = sorted(digest.days.items())
    estimate = None
    if plan and plan.get("calls"):
        took = _span(plan["sending_seconds"])
        estimate = {"rate": plan["rate"], "given": plan["rate_given"], "took": took}
    return {
        "hours": hours_chart(digest, open_hours(window)),
        "weekdays": weekdays_chart(digest),
        "window": window,
        "ringing": digest.ringing,
        "moved_by_window": digest.moved_by_window,
        "moved_by_cap": digest.moved_by_cap,
        "unzoned": digest.unzoned,
        "last_ring": digest.last_ring.isoformat(timespec="minutes") if digest.last_ring else None,
        "days": days[:PLAN_DAYS],
        "more_days": max(0, len(days) - PLAN_DAYS),
        "estimate": estimate,
    }


def _span(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _run(
    summary: Mapping[str, Any], meta: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    shown = {}
    for name, value in sorted(settings.items()):
        if value in (None, "", [], {}) or any(word in name for word in SECRET_WORDS):
            continue
        masked = name == "from_number" and not meta.get("report_unmasked")
        shown[name] = mask_phone(value) if masked else value
    return {
        "input": Path(meta.get("input") or summary.get("input") or "").name,
        "sha256": meta.get("input_sha256"),
        "settings": shown,
        "versions": f"batchcall {__version__}, Python {platform.python_version()}",
    }


def rewrite(run_dir: Path, *, unmasked: bool | None = None) -> Path:
    """Render RUN_DIR's report.html again from its journal (read-only) and summary.json,
    without touching its CSVs; returns the page's path (`batchcall report`). `unmasked`
    overrides the run's choice of whole or masked phones for this page."""
    from ._runner import status

    summary = status(run_dir).to_dict()
    try:
        last = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        summary["command"] = last.get("command", summary["command"])
    except (OSError, ValueError):
        pass
    with Journal(run_dir / "journal.sqlite", readonly=True) as journal:
        meta = {key: journal.meta(key) for key in PAGE_META}
        if unmasked is not None:
            meta["report_unmasked"] = unmasked
        # Rows sent without a time rang as the last pass went, not now.
        digest = digest_for(meta, _when(summary.get("finished_at")))
        for row in journal.report_rows():
            digest.add(row)
        timeline = Timeline.from_dict(journal.meta("timeline"))
    return write_html(run_dir / "report.html", summary, meta, digest, timeline)


def _when(stamp: str | None) -> datetime:
    try:
        return datetime.fromisoformat(stamp or "").astimezone(UTC)
    except ValueError:
        return datetime.now(UTC)


def write_live(journal: Journal, timeline: Timeline, *, started: float, started_at: str) -> Path:
    """The page of a run still going: its counts by outcome and error code (two counting
    queries, not a pass over the rows) and its requests so far, reloading itself."""
    meta = {key: journal.meta(key) for key in PAGE_META}
    run_dir = journal.path.parent
    counts, errors = journal.counts(), journal.error_counts()
    summary: dict[str, Any] = {
        "command": "run", "run_dir": str(run_dir), "input": meta.get("input"),
        "total": sum(counts.values()), "counts": counts, "errors": errors,
        "exit_code": None, "started_at": started_at, "finished_at": "still running",
        "seconds": round(time.monotonic() - started, 1), "rate": None, "limiter": {},
        "message": None,
    }  # fmt: skip
    digest = digest_for(meta, datetime.now(UTC))
    digest.problems = {code: Problem(code, n) for code, n in errors.items()}
    return write_html(run_dir / "report.html", summary, meta, digest, timeline, live=True)
