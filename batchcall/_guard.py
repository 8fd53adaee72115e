"""The contact ledger (`batchcall._ledger`) as one run sees it: the policy the run's settings
ask for, the plan's early answer, and the reservation just before each request leaves.

Planning. `Guard.check` takes each chunk of planned rows as the parent process receives it
(from the forked planning child, or from planning in-process) and asks `Ledger.check` about its
pending rows at once. A row the ledger would skip becomes `suppressed`, `already_scheduled` or
`frequency_capped`, with the ledger's message; a row a cap would defer keeps its request, which
holds the time it asked for, and shows the deferred time as the time it is sent with. The check
runs in the parent, never in the child: no database connection crosses a fork, and the parent,
which mostly waits for the child, has the spare CPU (see benchmarks/README.md, "ledger.py").

Sending. On a row's first attempt, inside the gate's permit and before the journal's
`mark_sending`, `Guard.reserve` checks the row again and reserves its call in one ledger
transaction: the answer that counts. A skip ends the row there (`Skipped`, never sent); a
deferral sets the request's `scheduled_time` to the instant the caps allow. The row's own
requested time is what is reserved, never a time an earlier verdict moved it to, so a re-run
of the row matches it in the ledger. The answer then settles the call (`scheduled` and `unknown`
keep counting, `failed` frees it); a row that goes back to `pending` releases it; and after a
crash `reconcile` makes the ledger agree with the journal.

Answers are written to the ledger in batches (`SETTLE_BATCH` rows, or after `SETTLE_EVERY`
seconds, and when the pass ends): a commit costs 50 to 110 µs here, the update itself 8 µs. A
call not yet settled is still `reserved`, which counts exactly as `scheduled` and `unknown` do,
and one lost in a crash is settled from the journal by `reconcile`; so the only effect of the
delay is that a `failed` call frees its place a moment later.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ._config import Settings
from ._journal import MOVED_BY_CAP, Job, Journal, PlannedRow, PolicySkip, Result
from ._ledger import Call, Cap, Ledger, Policy, SuppressionList, Verdict, Window, parse_cap
from ._ledger._model import iso
from ._load import default_region
from ._us_states import StateRule
from ._windows import WindowPolicy

log = logging.getLogger("batchcall")

ANSWERED = frozenset({"scheduled", "failed", "unknown"})
SETTLE_BATCH = 100
SETTLE_EVERY = 1.0  # seconds


class Skipped(Exception):
    """The ledger refused a row just before it would have left; the journal says why."""


def policy_for(settings: Settings, lists: SuppressionList | None) -> Policy:
    """The ledger policy `settings` ask for. `--force` and `--allow-duplicates` lift the repeat
    guard too: both say, for this run, "call again what was called before"."""
    return Policy(
        allow_repeat=settings.allow_repeat or settings.force or settings.allow_duplicates,
        repeat_window=settings.repeat_window,
        caps=tuple(parse_cap(cap) for cap in settings.max_calls),
        over_cap=settings.outside_window,
        max_defer_days=settings.max_defer_days,
        suppress=lists if lists else None,
    )


def load_lists(paths: Sequence[Path], region: str | None) -> SuppressionList | None:
    """The run's `--suppress` lists, read in full (a UsageError naming the file and line if
    any of it is not a number), or None when there are none."""
    return SuppressionList.load(paths, region=region) if paths else None


def list_region(settings: Settings) -> str | None:
    """The default region for national numbers in a list, as for the input's phones."""
    return default_region(settings)


@functools.lru_cache(maxsize=4096)
def _instant(text: str | None) -> datetime | None:
    # Campaign files repeat a handful of times over thousands of rows.
    return None if text is None else datetime.fromisoformat(text)


_LEADS = '{"from_number":"'
_SCRIPT = '","script_id":"'


def _script_of(request: str) -> str:
    """A planned request's script_id. The body is pydantic's JSON of `CreatePhoneCallRequest`,
    which starts with `from_number` (an E.164 number: no quote or escape) and then
    `script_id`, so the value is found by position; parsing the whole body cost a third of
    the plan-time check. Any other shape, or a value with an escape, is parsed in full."""
    return _read_script(request)[0]


def _read_script(request: str) -> tuple[str, str | None]:
    """`_script_of`, and the request's head that decided it by position (the text through
    the script_id's closing quote), or None when it was parsed in full."""
    if request.startswith(_LEADS):
        at = request.find('"', len(_LEADS))
        if request.startswith(_SCRIPT, at):
            start = at + len(_SCRIPT)
            end = request.find('"', start)
            value = request[start:end]
            if end > start and "\\" not in value:
                return value, request[: end + 1]
    return str(json.loads(request)["script_id"]), None


class _Scripts:
    """`_script_of` that remembers the last head it read by position: a run's requests share
    their from_number and script_id, so most rows cost one `startswith`. A request with that
    same head is read by position to the same value, so the answer is the same."""

    def __init__(self) -> None:
        self._head: str | None = None
        self._script = ""

    def __call__(self, request: str) -> str:
        head = self._head
        if head is not None and request.startswith(head):
            return self._script
        self._script, self._head = _read_script(request)
        return self._script


def _skip_outcome(verdict: Verdict) -> PolicySkip:
    if verdict.outcome is None:  # a bug guard: every skip names its outcome
        raise ValueError(f"the ledger skipped a call without an outcome: {verdict.message}")
    return verdict.outcome


def _now() -> datetime:
    return datetime.now(UTC)


class Guard:
    """One run's view of the ledger. `run_id` names the run in the ledger (and so in the
    messages of any later run it blocks)."""

    def __init__(
        self,
        ledger: Ledger,
        policy: Policy,
        journal: Journal,
        *,
        run_id: str,
        window: WindowPolicy | None,
        continued: bool = False,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.run_id = run_id
        self._journal = journal
        self.window = window
        self._clock = clock
        self._zone_column: int | None = journal.meta("timezone_column")
        self._state_column: int | None = journal.meta("state_column")
        self._zip_column: int | None = journal.meta("zip_column")
        # Whether a pending row may show a deferral the plan expected: then each reservation
        # that lets a row ring at its own time must undo it. A continued run cannot know.
        self._plan_deferred = continued
        self._answers: list[tuple[int, str, str | None]] = []
        self._scripts = _Scripts()
        self._flushed = time.monotonic()

    # --- planning -------------------------------------------------------------------------------

    def check(self, chunk: list[PlannedRow]) -> list[PlannedRow]:
        """The chunk with the ledger's early answer for each pending row."""
        todo = [(i, r) for i, r in enumerate(chunk) if r.state == "pending" and r.request]
        if not todo or self._nothing_to_answer([r.phone_e164 or "" for _, r in todo]):
            return chunk
        script_of, run_id = self._scripts, self.run_id
        calls = [
            Call(
                r.phone_e164 or "",
                script_of(r.request or "{}"),
                _instant(r.scheduled_time_sent),
                run_id,
                r.row,
            )
            for _, r in todo
        ]
        cells = {r.row: r.cells for _, r in todo}
        allowed = self._allowed(lambda row: json.loads(cells[row]))
        policy = self._policy_for(lambda row: json.loads(cells[row]))
        verdicts = self.ledger.check(calls, policy, now=self._clock(), allowed=allowed)
        out = list(chunk)
        for (i, r), verdict in zip(todo, verdicts, strict=True):
            if verdict.action == "skip":
                skip = _skip_outcome(verdict)
                rule = verdict.rule or r.window_rule
                out[i] = r._replace(
                    state=skip, error_code=skip, error=verdict.message, window_rule=rule
                )
            elif verdict.action == "defer" and verdict.ring_at is not None:
                self._plan_deferred = True
                out[i] = r._replace(
                    scheduled_time_sent=iso(verdict.ring_at),
                    time_moved=r.time_moved | MOVED_BY_CAP,
                    window_rule=_then(r.window_rule, verdict.rule),
                )
        return out

    def _nothing_to_answer(self, phones: list[str]) -> bool:
        """Whether `Ledger.check` would let each of these calls go as planned: each phone
        once in the chunk (a repeat counts against the later call), no --suppress list, and
        nothing on record for any of them. Then it is not asked, nor its calls made: most of
        the plan-time check of a chunk of new numbers."""
        if self.policy.suppress is not None or len(set(phones)) != len(phones):
            return False
        return not self.ledger.knows_any(phones)

    # --- sending --------------------------------------------------------------------------------

    def reserve(self, job: Job) -> None:
        """Reserve the row's call just before it leaves. Raises `Skipped` when the ledger
        refuses it (the journal records why); on a deferral, sets `job.body`'s time, which
        this attempt and every retry of the row then send."""
        body = job.body
        asked = body.get("scheduled_time")
        phone, script = body["contact"]["phone_number"], body["script_id"]
        call = Call(phone, script, _instant(asked), self.run_id, job.row)
        cells_of = self._journal.cells
        verdict = self.ledger.reserve(
            call, self._policy_for(cells_of), now=self._clock(), allowed=self._allowed(cells_of)
        )
        if verdict.action == "skip":
            outcome = _skip_outcome(verdict)
            self._journal.skip_by_policy(job.row, outcome, verdict.message, verdict.rule)
            log.info("row %d %s before sending: %s", job.row, outcome, verdict.message)
            raise Skipped(verdict.message)
        if verdict.action == "defer" and verdict.ring_at is not None:
            body["scheduled_time"] = iso(verdict.ring_at)
            self._journal.retime_by_cap(
                job.row, body["scheduled_time"], deferred=True, rule=verdict.rule
            )
            log.info("row %d: %s", job.row, verdict.message)
        elif self._plan_deferred:
            self._journal.retime_by_cap(job.row, asked, deferred=False)

    def settle(self, row: int, result: Result) -> None:
        """Record the row's answer (in the next batch): `scheduled` and `unknown` keep
        counting, `failed` frees the call's place."""
        self._answers.append((row, result.state, result.call_id))
        if len(self._answers) >= SETTLE_BATCH or time.monotonic() - self._flushed >= SETTLE_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the answers not yet in the ledger, in one transaction."""
        answers, self._answers = self._answers, []
        self._flushed = time.monotonic()
        if answers:
            self.ledger.settle_all(self.run_id, answers)

    def release(self, row: int) -> None:
        """The row is pending again and its request provably did nothing: forget its call."""
        self.ledger.release(self.run_id, row)

    def reconcile(self) -> int:
        """After a crash, make the ledger agree with the journal (after `journal.recover()`):
        a reserved call whose row has its answer is settled with it, one whose row is still
        pending never left and is released, and any other stays counted, as `unknown`.
        Returns how many became `unknown`."""
        self.flush()
        unknown = 0
        answers = self._journal.answers(self.ledger.reserved(self.run_id))
        for row, (state, call_id) in answers.items():
            if state in ANSWERED:
                self.ledger.settle(self.run_id, row, state, call_id)
                unknown += state == "unknown"
            elif state == "pending":
                self.ledger.release(self.run_id, row)
        return unknown + self.ledger.resolve_reserved(self.run_id)

    # --- the calling window: a deferral's landing, and the states' caps ---------------------------

    def _policy_for(self, cells_of: Callable[[int], Sequence[str]]) -> Policy:
        """The run's policy, with the caps of each callee's state (`us-tcpa`) on top."""
        window = self.window
        rules = None if window is None else window.state_rules
        if window is None or not rules:
            return self.policy

        def caps_for(call: Call) -> tuple[Cap, ...]:
            try:
                states = window.states_for(call.phone, *self._address(cells_of(call.row)))
            except ValueError:  # a bad state or ZIP cell: validation already refused the row
                return ()
            return state_caps(rules, states)

        return dataclasses.replace(
            self.policy, caps_for=caps_for, caps_for_period=_longest_cap(rules)
        )

    def _allowed(self, cells_of: Callable[[int], Sequence[str]]) -> Window | None:
        """The calling window as the ledger asks it: the first allowed instant at or after t
        for a call, so that a deferral never lands outside the window (nor the states' rules)."""
        window = self.window
        if window is None:
            return None

        def allowed(call: Call, t: datetime) -> datetime | None:
            cells = cells_of(call.row)
            zone = row_cell(cells, self._zone_column)
            try:
                zones, layer = window.key_for(call.phone, zone, *self._address(cells))
            except ValueError:  # a bad zone, state or ZIP: validation already refused the row
                return None
            return window.first_allowed(zones, t, layer) if zones else None

        return allowed

    def _address(self, cells: Sequence[str]) -> tuple[str | None, str | None]:
        """A row's state and ZIP cells."""
        return row_cell(cells, self._state_column), row_cell(cells, self._zip_column)


@functools.lru_cache(maxsize=1024)
def _state_caps(rules: tuple[StateRule, ...]) -> tuple[Cap, ...]:
    return tuple(
        Cap(rule.cap[0], timedelta(hours=rule.cap[1]), rule=rule.cap_label())
        for rule in rules
        if rule.cap is not None
    )


def state_caps(rules: Mapping[str, StateRule], states: tuple[str, ...]) -> tuple[Cap, ...]:
    """The frequency caps the laws of `states` set, each naming its law."""
    return _state_caps(tuple(rules[s] for s in states if s in rules))


def _longest_cap(rules: Mapping[str, StateRule]) -> timedelta:
    return max((timedelta(hours=r.cap[1]) for r in rules.values() if r.cap), default=timedelta(0))


def _then(window_rule: str | None, cap_rule: str | None) -> str | None:
    """A row's rule once a cap moved it too: the window's, then the cap's (as the journal
    writes it, so that undoing the cap's part finds it)."""
    if cap_rule is None:
        return window_rule
    return cap_rule if window_rule is None else f"{window_rule}; then {cap_rule}"


def row_cell(cells: Sequence[str], col: int | None) -> str | None:
    """A row's cell of an optional column (timezone, state), None when absent or blank."""
    if col is None or col >= len(cells):
        return None
    return cells[col].strip() or None
