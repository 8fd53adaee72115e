"""Send one row: wait for the gate, POST, and turn what happened into the row's next state.

The retry policy follows one question: could the server have executed the request?
- Provably not (429, 503, connect errors, pool timeout): retry, it is safe.
- Provably yes or no with an answer (201, 400, 404): final. A 201 is never sent again, even
  when its body has no usable `call_id` (the row is then `unknown`: the call exists, its id
  does not reach us).
- Maybe (500/502/504, a timeout, a connection dropped after sending): `unknown`, never
  retried unless the user opted in with --retry-ambiguous, and then with the same
  Idempotency-Key so a server that honours it replays instead of calling twice.
- 401: nothing was executed and nothing else will be; abort the whole run.

`--timeout` is each request's whole budget (`asyncio.timeout` around it): httpx's own timeouts
are per read, so a server trickling one byte a second would hold a row forever. A `Breaker`
counts answers that say the API is unwell (timeouts, 5xx, dropped connections), across all
workers: after `--breaker` of them in a row the pass starts no new row (botocore's retry quota
and Stripe's client have the same shape: stop spending requests on an API that is down). The
server's messages are stored with the client's API key blanked out, should a server echo it.

`Execution` is one sending pass over a run's journal, made of parts with one job each:
- `_Loader` commits planned chunks to the journal as they come;
- `_feed` streams the journal's `pending` rows to a queue;
- `_Worker` re-checks a timeless row's calling window (`windows.recheck`), sends the row
  through the `Dispatcher` and records its result;
- `_PassLog` is the dispatcher's `RowLog`: just before a row's first request leaves it
  reserves the call in the contact ledger (`guard.Guard`), then writes `sending`, which
  `_SendingCommits` commits with the marks of the other rows the gate admitted meanwhile (one
  fsync for all of them) before any of them leaves;
- `Stopper` turns Ctrl-C, SIGTERM and aborts (401, TLS) into one stop;
- `SendStats` times the pass, and the gate counts its requests and 429s.
So the first request leaves long before a big file is fully read, and memory does not grow with
the file. `Execution.run()` returns what the pass did as one `PassOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random as _random
import signal
import sqlite3
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import ValidationError

from ._config import Settings
from ._errors import AbortedError, AuthError, LedgerError, TlsError, UnavailableError
from ._guard import Guard, Skipped, row_cell
from ._html import LIVE_EVERY, write_live
from ._journal import ANSWER_DELAY, FINAL, Job, Journal, Result
from ._ledger._model import iso
from ._limiter import Gate, GateClosed, Reply, parse_retry_after, rate_headers
from ._models import CreateCallResponse, ErrorResponse
from ._prepare import Prepared
from ._timeline import Timeline
from ._windows import WindowPolicy, placement_now

log = logging.getLogger("batchcall")

ENDPOINT = "/api/v1/create-phone-call"

# Errors raised before a single byte of the request could have been processed.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Every other transport error (read/write errors and timeouts, a dropped connection) came
# after the request may have reached the server: `classify_error` makes those `unknown`.


def _tls_failure(exc: BaseException) -> str | None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None


class PermitLike(Protocol):
    def learn(self, reply: Reply) -> float | None: ...


class Unsent(Exception):
    """The pass stopped before a row could be sent again, and nothing it sent was executed
    (429s, say): it goes back to `pending`, for `resume`."""


class GateLike(Protocol):
    """What the dispatcher needs of `limiter.Gate`; tests pass simpler gates."""

    def permit(self) -> contextlib.AbstractAsyncContextManager[PermitLike]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What one HTTP exchange said, and what to do about it; the gate learns from it too."""

    result: Result
    status: int | None = None  # None: no answer (a transport error)
    retry: bool = False  # safe to send again: the server provably did not execute it
    ambiguous: bool = False  # the server may or may not have executed it; --retry-ambiguous
    retry_after: float | None = None  # the server's own wait, in seconds
    limit: int | None = None
    remaining: int | None = None

    @property
    def throttled(self) -> bool:
        return self.status == 429


REDACTED = "***"


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret in it blanked out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _message(response: httpx.Response, secrets: Sequence[str] = ()) -> str:
    try:
        message = ErrorResponse.model_validate_json(response.content).message
    except ValidationError:
        # Blanked before it is cut, so no part of a secret can survive the cut.
        text = redact(response.text.strip().replace("\n", " "), secrets)
        return text[:200] or response.reason_phrase
    return redact(message, secrets)


def classify(
    response: httpx.Response, *, now: float | None = None, secrets: Sequence[str] = ()
) -> Decision:
    """The decision for an answer; `now` (wall clock) reads an HTTP-date Retry-After, and
    `secrets` (the API key) are blanked out of the server's message."""
    status = response.status_code
    limit, remaining = rate_headers(response.headers)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now=time.time() if now is None else now
        )
    return dataclasses.replace(
        _outcome(response, secrets),
        status=status,
        limit=limit,
        remaining=remaining,
        retry_after=retry_after,
    )


def _created(response: httpx.Response) -> Decision:
    """A 200/201: the call exists. Scheduled with its call_id, or `unknown` without one; final
    either way, since sending it again could only call the person twice."""
    status = response.status_code
    call_id: object
    contact_id: str | None
    try:
        body = CreateCallResponse.model_validate_json(response.content)
        call_id, contact_id = body.call_id, body.contact_id
    except ValidationError:
        # Not the spec's shape: keep a usable call_id if there is one (the call exists).
        try:
            loose = json.loads(response.content)
        except ValueError:
            return _created_without_id(status, "unreadable_response", "a body that is not JSON")
        found = loose if isinstance(loose, dict) else {}
        call_id = found.get("call_id")
        contact_id = found.get("contact_id") if isinstance(found.get("contact_id"), str) else None
    if not isinstance(call_id, str) or not call_id.strip():
        return _created_without_id(status, "missing_call_id", "no usable call_id")
    return Decision(Result("scheduled", status, call_id=call_id, contact_id=contact_id))


def _created_without_id(status: int, code: str, what: str) -> Decision:
    return Decision(
        Result(
            "unknown",
            status,
            error_code=code,
            error=f"The API answered {status} (created) with {what}: the call exists but its "
            "id is unknown. Look it up in Voxworks before re-sending; retry --include-unknown "
            "calls the person again unless the API honours the Idempotency-Key.",
        )
    )


def _outcome(response: httpx.Response, secrets: Sequence[str] = ()) -> Decision:
    status = response.status_code
    if status in (200, 201):
        return _created(response)
    if status == 429:
        return Decision(
            Result(
                "failed",
                status,
                error_code="rate_limited",
                error="The API kept answering 429 (rate limited); retry the row later.",
            ),
            retry=True,
        )
    if status == 503:
        return Decision(
            Result(
                "failed",
                status,
                error_code="unavailable",
                error=f"The API was unavailable (503): {_message(response, secrets)}. Retry later.",
            ),
            retry=True,
        )
    if status in (500, 502, 504):
        return Decision(
            Result(
                "unknown",
                status,
                error_code="server_error",
                error=f"HTTP {status} from the API: the call may or may not exist. "
                "Check before re-sending (retry --include-unknown).",
            ),
            ambiguous=True,
        )
    code = {400: "rejected", 404: "not_found"}.get(status, f"http_{status}")
    return Decision(Result("failed", status, error_code=code, error=_message(response, secrets)))


def classify_error(exc: httpx.HTTPError) -> Decision:
    name = type(exc).__name__
    if isinstance(exc, NOT_SENT):
        return Decision(
            Result(
                "failed",
                error_code="connect_failed",
                error=f"Could not reach the API ({name}); nothing was sent. Retry later.",
            ),
            retry=True,
        )
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_lost"
    return Decision(
        Result(
            "unknown",
            error_code=code,
            error=f"{name} after the request was sent: the call may or may not exist. "
            "Check before re-sending (retry --include-unknown).",
        ),
        ambiguous=True,
    )


def deadline_passed(timeout: float | None) -> Decision:
    """No whole answer within `--timeout`: the request may have reached the server."""
    within = f"within --timeout {timeout:g}s" if timeout else "in time"
    return Decision(
        Result(
            "unknown",
            error_code="timeout",
            error=f"No complete answer {within}: the call may or may not exist. Check before "
            "re-sending (retry --include-unknown).",
        ),
        ambiguous=True,
    )


def unwell(decision: Decision) -> bool:
    """An answer that says the API is not working: none at all (a timeout, a refused or dropped
    connection) or a 5xx."""
    return decision.status is None or decision.status >= 500


class Breaker:
    """Opens after `threshold` unwell answers in a row (`unwell`), counted across every worker
    in the order they come back; any other answer (2xx, 4xx, 429) closes the count again. Zero
    turns it off. On opening it calls `trip` once, with the answer that opened it.

    An API that is down turns every row sent into it into an `unknown` (a call that may exist)
    or a burnt retry; stopping early leaves them `pending`, for `resume` once it is back.
    """

    __slots__ = ("_in_a_row", "_trip", "is_open", "threshold")

    def __init__(self, threshold: int = 0, trip: Callable[[Decision], None] | None = None) -> None:
        self.threshold = threshold
        self.is_open = False
        self._in_a_row = 0
        self._trip = trip

    def record(self, decision: Decision) -> None:
        if self.threshold <= 0 or self.is_open:
            return
        if not unwell(decision):
            self._in_a_row = 0
            return
        self._in_a_row += 1
        if self._in_a_row >= self.threshold:
            self.is_open = True
            if self._trip is not None:
                self._trip(decision)


class RowLog(Protocol):
    """What the dispatcher needs of the sending pass around a row's first request."""

    @property
    def stopping(self) -> bool:
        """True once the pass is stopping: no new row may leave."""
        ...

    def mark_sending(self, job: Job, attempts: int) -> Awaitable[None] | None:
        """Record that the row is about to leave (the journal's `pending -> sending`): either
        committed on return (None), or by the time the awaitable it returns is done, which
        raises if that commit failed; the request leaves only then.

        It may first refuse the row, raising `guard.Skipped` (the row is never sent), or move
        the call's time, setting `job.body["scheduled_time"]`, which this attempt and every
        retry of the row send."""
        ...


def _bearer_token(client: httpx.AsyncClient) -> tuple[str, ...]:
    """The API key the client sends, to blank it out of what servers say; kept nowhere else."""
    _, _, token = client.headers.get("Authorization", "").partition(" ")
    return (token.strip(),) if token.strip() else ()


class Dispatcher:
    """Sends rows through one shared gate; all retry decisions live here.

    `timeout` bounds each request as a whole; `breaker` is shared by every worker of a pass.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        gate: GateLike,
        row_log: RowLog,
        *,
        retry_ambiguous: bool = False,
        max_attempts: int = 5,
        max_throttled: int = 50,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float | None = None,
        breaker: Breaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        timeline: Timeline | None = None,
    ) -> None:
        self._client = client
        # Joined to the base URL once: httpx would parse and merge it again for every request.
        self._url = client.build_request("POST", ENDPOINT).url
        self._timeline = timeline
        self._secrets = _bearer_token(client)
        self._timeout = timeout
        self._breaker = breaker or Breaker()
        self._gate = gate
        self._row_log = row_log
        self._retry_ambiguous = retry_ambiguous
        self._max_attempts = max_attempts
        self._max_throttled = max_throttled
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random

    def _should_retry(self, decision: Decision, failures: int) -> bool:
        retryable = decision.retry or (decision.ambiguous and self._retry_ambiguous)
        return retryable and failures < self._max_attempts

    def _sleep_time(self, decision: Decision, failures: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries so workers do not stampede. A
        # 503's Retry-After is a floor, capped like the backoff.
        backoff = self._random() * min(self._backoff_cap, self._backoff_base * 2**failures)
        floor = min(decision.retry_after or 0.0, self._backoff_cap)
        return max(floor, backoff)

    async def send(self, job: Job) -> tuple[Result, int] | None:
        """Send until final. Returns the row's result and its total attempts, or None when the
        pass was stopping before the row's first request could leave (it stays `pending`).

        Raises UnavailableError when the breaker opened while the row waited to be sent again
        and nothing it sent can have been executed, and Unsent when the pass stopped then:
        the worker puts it back to `pending` either way."""
        attempts = job.attempts
        failures = throttled = 0
        executed = False  # could any attempt so far have been executed?
        last: Decision | None = None
        while True:
            attempts += 1
            try:
                exchange = await self._attempt(job, attempts, first=last is None)
            except GateClosed:
                exchange = None  # the pass stopped while this row waited for its turn
            if exchange is None:
                if last is None:
                    return None
                if executed:
                    return last.result, attempts - 1
                raise Unsent
            decision, pause = exchange
            last = decision
            self._breaker.record(decision)
            executed = executed or not decision.retry
            if decision.throttled:
                throttled += 1
                if throttled > self._max_throttled:
                    return decision.result, attempts
                delay = pause or 0.0  # the gate already paused every worker; this row waits
            else:
                failures += 1
                if not self._should_retry(decision, failures):
                    return decision.result, attempts
                delay = self._sleep_time(decision, failures)
            if self._breaker.is_open:
                if executed:
                    return decision.result, attempts
                raise UnavailableError("The API looks unavailable; this row was never executed.")
            await self._wait_to_retry(delay)

    async def _wait_to_retry(self, seconds: float) -> None:
        """A row's wait before it is sent again, cut short when the pass stops: a stop must
        not wait out a minute's Retry-After, only to send nothing."""
        if isinstance(self._gate, Gate) and self._sleep is asyncio.sleep:
            await self._gate.closed_within(seconds)
        else:
            await self._sleep(seconds)

    async def _attempt(
        self, job: Job, attempts: int, *, first: bool
    ) -> tuple[Decision, float | None] | None:
        """One exchange inside one permit: the decision, and the gate's pause after a 429."""
        async with self._gate.permit() as permit:
            # Only now, once the gate admitted it (its wait may be long): a stop that came
            # meanwhile starts nothing, and `sending` is committed before a byte leaves.
            if self._row_log.stopping:
                return None
            if first:
                durable = self._row_log.mark_sending(job, attempts)
                if durable is not None:
                    await durable
            decision = await self._timed_exchange(job)
            pause = permit.learn(decision)
        if decision.status == 401:
            raise AuthError(
                "The API rejected the key (401). Check VOXWORKS_API_KEY or "
                "--api-key-file; unsent rows stay pending for `batchcall resume`."
            )
        return decision, pause

    async def _timed_exchange(self, job: Job) -> Decision:
        if self._timeline is None:
            return await self._exchange(job)
        sent_at, started = self._timeline.timed(), time.monotonic()
        decision = await self._exchange(job)
        self._timeline.record(sent_at, time.monotonic() - started, decision.status)
        return decision

    async def _exchange(self, job: Job) -> Decision:
        """POST the row once, within the timeout, and classify what came back."""
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(
                    self._url, json=job.body, headers={"Idempotency-Key": job.idempotency_key}
                )
        except TimeoutError:
            return deadline_passed(self._timeout)
        except httpx.HTTPError as exc:
            if _tls_failure(exc):
                # Retrying cannot fix a certificate, and it may mean someone is in the middle:
                # stop the whole run, as for a 401.
                raise TlsError(
                    f"The TLS certificate of {exc.request.url.host} did not verify "
                    f"({_tls_failure(exc)}). Nothing was sent; unsent rows stay pending."
                ) from exc
            return classify_error(exc)
        return classify(response, secrets=self._secrets)


# --- one sending pass ------------------------------------------------------------------------

DEFAULT_WORKERS = 64
# Pending rows the feeder reads from the journal at a time.
FEED_BATCH = 200


class Progress(Protocol):
    """What the runner tells a progress display. The CLI's is a tqdm bar."""

    def set_total(self, total: int) -> None: ...

    def advance(self, rows: int, *, throttled: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PacedProgress(Progress, Protocol):
    """A display that also shows the gate's pacing (the CLI's bar does); told about once a
    second and as a pause begins, so a pause counts down though no row completes. `eta(rows)`
    is the seconds to send `rows` more, or None if the gate cannot tell yet."""

    def pacing(self, *, waiting: float, eta: Callable[[int], float | None]) -> None: ...


@dataclass
class SendStats:
    """Timings and counts of one sending pass, for the summary."""

    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    first_sent: float | None = None
    last_done: float | None = None
    done: int = 0

    def sent(self) -> None:
        """A row's first request is leaving."""
        if self.first_sent is None:
            self.first_sent = time.monotonic()
            log.info("first request sent after %.2fs", self.first_sent - self.started)

    def finished(self) -> None:
        """A row got its answer."""
        self.done += 1
        self.last_done = time.monotonic()

    def rate(self) -> float | None:
        """Rows finished per second, from the first request to the last answer."""
        if self.first_sent is None or not self.last_done or self.last_done <= self.first_sent:
            return None
        return round(self.done / (self.last_done - self.first_sent), 2)


@dataclass(frozen=True)
class PassOutcome:
    """What one sending pass did; the runner builds the run's summary from it alone."""

    stats: SendStats
    requests: int  # requests the gate admitted, every attempt counted (the run's one count)
    throttled: int  # answers that were 429 (the gate's count too)
    limiter: dict[str, Any] | None  # what the gate learned; None when nothing could be sent
    abort: AbortedError | None  # a 401, a TLS failure or the open breaker that stopped the pass
    interrupted: bool  # Ctrl-C, SIGTERM or SIGHUP stopped the pass
    # Anything else that ended the pass early (the input failing midway, the planning child
    # crashing): the runner raises it once the reports are written.
    error: BaseException | None
    signal: str | None = None  # the first signal that stopped the pass: SIGINT, SIGTERM, SIGHUP


# The signals that stop a pass cleanly. A scheduler's SIGTERM and a closed terminal's SIGHUP
# get what Ctrl-C gets (reports written, the resume command printed); only the exit code,
# 128 + the signal's number, tells them apart.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopper:
    """One stop for the whole pass, whoever asks for it.

    A first Ctrl-C (or SIGTERM, or SIGHUP), or an abort, stops new rows from starting and lets
    those in flight finish. A second signal cancels those in flight too (`hard`); they become
    `unknown`. The first signal and the first abort are the ones reported.
    """

    def __init__(self, wake: asyncio.Event, on_stop: Callable[[], None] | None = None) -> None:
        self.stopping = False
        self._on_stop = on_stop  # the gate's close: rows waiting for it, a pause included, stop
        self.signal: str | None = None
        self.hard = False
        self.abort: AbortedError | None = None
        self._wake = wake
        self._tasks: Sequence[asyncio.Task[None]] = ()

    @property
    def interrupted(self) -> bool:
        return self.signal is not None

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()  # a feeder waiting for the next chunk must stop instead
        if self._on_stop is not None:
            self._on_stop()

    def abort_with(self, exc: AbortedError) -> None:
        if self.abort is None:
            self.abort = exc
        self.stop()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            # A second signal: stop waiting for in-flight requests; they become `unknown`.
            self.hard = True
            for task in self._tasks:
                task.cancel()
        if self.signal is None:
            self.signal = sig.name
        self.stop()

    @contextlib.contextmanager
    def on_signals(self, tasks: Sequence[asyncio.Task[None]]) -> Iterator[None]:
        """Stop on SIGINT, SIGTERM and SIGHUP while `tasks` run; a hard stop cancels them."""
        loop = asyncio.get_running_loop()
        self._tasks = tasks
        installed = []
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


class _PassLog:
    """The dispatcher's `RowLog` in a pass: the ledger's reservation, the journal, the pass's
    stop, and its timing."""

    def __init__(
        self, journal: Journal, stopper: Stopper, stats: SendStats, guard: Guard | None
    ) -> None:
        self._marks = _SendingCommits(journal)
        self._stopper = stopper
        self._stats = stats
        self._guard = guard

    @property
    def stopping(self) -> bool:
        return self._stopper.stopping

    def mark_sending(self, job: Job, attempts: int) -> Awaitable[None]:
        if self._guard is not None:
            # Inside the permit: the gate's wait may have been long, and a number suppressed
            # meanwhile must be honoured. The reservation is committed before `sending`, so a
            # crash between the two leaves a reserved call whose row is pending, which resume
            # releases.
            self._guard.reserve(job)
        durable = self._marks.mark(job.row, attempts)
        self._stats.sent()
        return durable


class _SendingCommits:
    """Group commit of `sending` marks: the marks written during one turn of the event loop
    (the rows the gate admitted together) are committed at the start of the next, in one
    transaction and one fsync, with any answers waiting. Each row's request waits for it.

    The fsync blocks the loop (about 2 ms here, under load more): one per row was a third of
    a row's time at the ceiling, and a burst of rows at a window's reset paid it for each."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    def mark(self, row: int, attempts: int) -> asyncio.Future[None]:
        """Write the row's mark; the future is done once it is on the disk."""
        transaction = self._journal.write_sending(row, attempts)
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._commit)
        durable: asyncio.Future[None] = loop.create_future()
        self._waiting.append((transaction, durable))
        return durable

    def _commit(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            self._journal.commit()
        except Exception as exc:
            failed: Exception | None = exc
        else:
            failed = None
        for transaction, durable in waiting:
            if durable.done():  # its row was cancelled meanwhile (a hard stop)
                continue
            if failed is None and self._journal.durable(transaction):
                durable.set_result(None)
            else:
                # The transaction was rolled back (a full disk): the row is pending again and
                # must not leave.
                durable.set_exception(
                    failed or sqlite3.OperationalError("the sending mark was not committed")
                )


ANNOUNCE_PAUSE = 5.0  # seconds; a longer pause is said, so a log never shows a silent gap


def announce_pause(seconds: float, retry_after: float | None) -> None:
    """Say a long rate-limit pause in run.log, and on stderr when it is not a terminal.

    A cron log would otherwise show an unexplained gap; on a terminal the bar is drawing.
    """
    if seconds <= ANNOUNCE_PAUSE:
        return
    why = f"429, Retry-After {retry_after:.0f}" if retry_after is not None else "429"
    line = f"waiting {seconds:.0f} s for the API's rate limit ({why})"
    log.info(line)
    stream = sys.stderr
    if stream is not None and not stream.isatty():
        print(f"batchcall: {line}", file=stream, flush=True)


REDRAW_EVERY = 1.0  # seconds between the pacing news a display is given


class _Display:
    """What the progress display is told; the 429s it shows are the gate's count."""

    def __init__(self, progress: Progress | None, gate: Gate) -> None:
        self._progress = progress
        self._gate = gate
        self._paced = progress if isinstance(progress, PacedProgress) else None
        self._total: int | None = None
        self._finished = 0

    def paused(self, seconds: float, retry_after: float | None) -> None:
        """The gate's `on_pause`: say a long pause, and show it on the bar at once."""
        announce_pause(seconds, retry_after)
        self.pacing()

    def pacing(self) -> None:
        if self._paced is not None:
            gate = self._gate
            self._paced.advance(0, throttled=gate.throttled)  # the 429 that began a pause
            self._paced.pacing(waiting=gate.pause_left(), eta=gate.seconds_for)

    async def redraw(self) -> None:
        """Tell the display the gate's pacing every REDRAW_EVERY seconds, until cancelled."""
        if self._paced is None:
            return
        while True:
            self.pacing()
            await asyncio.sleep(REDRAW_EVERY)

    def planned(self, total: int, *, finished: int) -> None:
        self._total = total
        self._finished += finished
        if self._progress:
            self._progress.set_total(total)
            self._progress.advance(finished, throttled=self._gate.throttled)

    def finished(self) -> None:
        self._finished += 1
        if self._progress:
            self._progress.advance(1, throttled=self._gate.throttled)

    def backlog(self) -> int | None:
        """Rows of the pass not yet done, once all are planned; None before. It may count
        rows the pass will not send (a later window), never fewer than it will."""
        return None if self._total is None else max(0, self._total - self._finished)


class _AnswerCommits:
    """Commits the answers that no `sending` mark has carried to the disk within ANSWER_DELAY
    (a pause after a 429, the last rows of a pass). A commit that fails stops the pass."""

    def __init__(self, journal: Journal, stopper: Stopper) -> None:
        self._journal = journal
        self._stopper = stopper
        self._timer: asyncio.TimerHandle | None = None
        self.error: Exception | None = None

    def soon(self) -> None:
        if self._timer is None and self._journal.uncommitted:
            self._timer = asyncio.get_running_loop().call_later(ANSWER_DELAY, self._commit)

    def _commit(self) -> None:
        self._timer = None
        try:
            self._journal.commit()
        except Exception as exc:
            self.error = self.error or exc
            self._stopper.stop()

    def final(self) -> Exception | None:
        """Commit what is left at the pass's end; the first failure of any commit, if any."""
        if self._timer is not None:
            self._timer.cancel()
        self._commit()
        return self.error


class _Loader:
    """Commits planned chunks to the journal as they come, and wakes the feeder for each."""

    def __init__(
        self,
        journal: Journal,
        planned: Prepared | None,
        *,
        display: _Display,
        stopper: Stopper,
        rows_ready: asyncio.Event,
    ) -> None:
        self._journal = journal
        self._planned = planned
        self._display = display
        self._stopper = stopper
        self._rows_ready = rows_ready
        self.complete = asyncio.Event()  # every planned row is in the journal

    async def run(self) -> None:
        if self._planned is not None:
            run_id: str = self._journal.meta("run_id")
            total = sum(self._journal.counts().values())
            async for chunk in self._planned:
                self._journal.add_rows(chunk, run_id=run_id)
                total += len(chunk)
                self._display.planned(total, finished=sum(1 for r in chunk if r.state in FINAL))
                self._rows_ready.set()
                if self._stopper.stopping:
                    return
                # Let the workers send between chunks: the first request must not wait for
                # the whole file to be validated.
                await asyncio.sleep(0)
            self._journal.set_meta(load_complete=True)
        self.complete.set()
        self._rows_ready.set()


async def _feed(
    journal: Journal,
    queue: asyncio.Queue[Job | None],
    *,
    workers: int,
    loaded: asyncio.Event,
    rows_ready: asyncio.Event,
    stopper: Stopper,
) -> None:
    """Stream `pending` rows from the journal to the workers, as the loader commits them."""
    cursor = 0
    while not stopper.stopping:
        jobs = journal.pending(after=cursor, limit=FEED_BATCH)
        if not jobs:
            if loaded.is_set():
                # A last look: the loader may have committed after our query.
                jobs = journal.pending(after=cursor, limit=FEED_BATCH)
                if not jobs:
                    break
            else:
                rows_ready.clear()
                await rows_ready.wait()
                continue
        for job in jobs:
            if stopper.stopping:
                break
            await queue.put(job)
            cursor = job.row
    # Only on a normal end: when the pass fails or is cancelled, the workers are cancelled
    # too, and waiting to hand them a sentinel through a full queue would hang forever.
    for _ in range(workers):
        await queue.put(None)


class _Worker:
    """Sends queued rows one at a time and records each result; a pass runs many at once."""

    def __init__(
        self,
        journal: Journal,
        dispatcher: Dispatcher,
        *,
        policy: WindowPolicy | None,
        stopper: Stopper,
        stats: SendStats,
        display: _Display,
        commits: _AnswerCommits,
        guard: Guard | None = None,
    ) -> None:
        self._journal = journal
        self._commits = commits
        self._dispatcher = dispatcher
        self._policy = policy
        self._stopper = stopper
        self._stats = stats
        self._display = display
        self._guard = guard
        self._zone_column: int | None = journal.meta("timezone_column")
        self._state_column: int | None = journal.meta("state_column")
        self._zip_column: int | None = journal.meta("zip_column")

    async def run(self, queue: asyncio.Queue[Job | None]) -> None:
        while (job := await queue.get()) is not None:
            if self._stopper.stopping:
                continue
            # A row with a time was placed for good at validation; only a timeless one can
            # have drifted out of its window while it waited.
            if self._policy is not None and "scheduled_time" not in job.body:
                placed = self._recheck(self._policy, job)
                if placed is None:
                    continue
                job = placed
            await self._send(job)

    async def _send(self, job: Job) -> None:
        try:
            sent = await self._dispatcher.send(job)
        except Skipped:
            self._display.finished()  # the ledger refused it; the journal says why
            return
        except LedgerError as exc:
            # The reservation failed, before the row was marked sending: it stays pending,
            # and no row may leave unchecked.
            self._stopper.abort_with(exc)
            return
        except (AbortedError, Unsent) as exc:
            # A 401 or a TLS failure, or a stop while the row waited to be sent again: nothing
            # was executed, so the row goes back to pending for `resume`, and no other row is
            # started.
            self._journal.back_to_pending(job.row)
            if isinstance(exc, AbortedError):
                self._stopper.abort_with(exc)
            if self._guard is not None:
                self._ledger(self._guard.release, job.row)
            return
        if sent is None:
            return  # the pass stopped before this row left: it stays pending
        result, attempts = sent
        self._journal.record_result(job.row, result, attempts=attempts)
        self._commits.soon()
        if self._guard is not None:
            self._ledger(self._guard.settle, job.row, result)
        self._stats.finished()
        _log_row(job.row, result)
        self._display.finished()

    def _ledger(self, action: Callable[..., None], *args: Any) -> None:
        """Tell the ledger how a row ended; if it cannot be told, stop the pass (`resume`
        makes the ledger agree with the journal)."""
        try:
            action(*args)
        except LedgerError as exc:
            self._stopper.abort_with(exc)

    def _recheck(self, policy: WindowPolicy, job: Job) -> Job | None:
        """The row as it may leave now, or None when its window refuses it for good."""
        columns = (self._zone_column, self._state_column, self._zip_column)
        # The row's cells are read back only when one of them can say something.
        cells = self._journal.cells(job.row) if any(c is not None for c in columns) else []
        placed = placement_now(
            policy,
            job.body,
            zone=row_cell(cells, self._zone_column),
            state=row_cell(cells, self._state_column),
            zip_code=row_cell(cells, self._zip_column),
            now=datetime.now(UTC),
        )
        if placed is None:
            return job
        if placed.error_code is not None:
            code, error = placed.error_code, placed.error or ""
            self._journal.refuse_before_send(job.row, code, error, placed.rule)
            log.info("row %d failed before sending, %s: %s", job.row, code, error)
            self._display.finished()
            return None
        if placed.moved and placed.when is not None:
            body = {**job.body, "scheduled_time": iso(placed.when)}
            self._journal.replan(job.row, body, placed.rule)
            return dataclasses.replace(job, body=body)
        return job


class Execution:
    """One sending pass over a run's journal; see the module docstring for its parts."""

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None,
        planned: Prepared | None,
        progress: Progress | None,
        policy: WindowPolicy | None,
        guard: Guard | None = None,
    ) -> None:
        self._journal = journal
        self._settings = settings
        self._client = client
        self._planned = planned
        self._progress = progress
        self._policy = policy
        self._guard = guard

    async def run(self) -> PassOutcome:
        """Load, feed and send until every row is done or the pass stops. What ended the pass
        early is in the outcome, not raised, so the runner can write the reports first."""
        settings = self._settings
        stats = SendStats()
        gate = Gate(
            max_rate=settings.max_rate,
            concurrency=settings.concurrency,
            on_pause=lambda seconds, retry_after: display.paused(seconds, retry_after),
            backlog=lambda: display.backlog() if loader.complete.is_set() else None,
        )
        rows_ready = asyncio.Event()
        stopper = Stopper(rows_ready, on_stop=gate.close)
        display = _Display(self._progress, gate)
        loader = _Loader(
            self._journal, self._planned, display=display, stopper=stopper, rows_ready=rows_ready
        )
        tasks = [asyncio.create_task(loader.run())]
        commits = _AnswerCommits(self._journal, stopper)
        timeline = Timeline.from_dict(self._journal.meta("timeline"))
        if self._client is not None:
            row_log = _PassLog(self._journal, stopper, stats, self._guard)
            breaker = Breaker(
                settings.breaker, lambda last: stopper.abort_with(_unavailable(settings, last))
            )
            dispatcher = Dispatcher(
                self._client, gate, row_log, retry_ambiguous=settings.retry_ambiguous,
                timeout=settings.timeout, breaker=breaker, timeline=timeline,
            )  # fmt: skip
            worker = _Worker(
                self._journal, dispatcher, policy=self._policy, stopper=stopper, stats=stats,
                display=display, commits=commits, guard=self._guard,
            )  # fmt: skip
            tasks += self._sending(worker, loader, rows_ready, stopper)
        sending = self._client is not None
        live = asyncio.create_task(self._live(timeline, stats)) if sending else None
        # Only while sending: a pass that sends nothing has no pacing, and keeps tqdm's ETA.
        redraw = asyncio.create_task(display.redraw()) if sending else None
        try:
            error = await self._wait(tasks, stopper)
        finally:  # on every way out, Ctrl-C and errors too: no redraw after the bar closes
            if redraw is not None:
                redraw.cancel()
                await asyncio.gather(redraw, return_exceptions=True)
        late = commits.final()  # always, and first: the last answers must reach the disk
        error = error or late
        if live is not None:
            live.cancel()
            await asyncio.gather(live, return_exceptions=True)
            self._keep(timeline)
        return PassOutcome(
            stats=stats,
            requests=gate.requests,
            throttled=gate.throttled,
            limiter=gate.stats() if self._client is not None else None,
            abort=stopper.abort,
            interrupted=stopper.interrupted,
            error=error,
            signal=stopper.signal,
        )

    async def _live(self, timeline: Timeline, stats: SendStats) -> None:
        """Rewrite report.html every LIVE_EVERY seconds while the pass goes."""
        while True:
            await asyncio.sleep(LIVE_EVERY)
            try:
                write_live(
                    self._journal, timeline, started=stats.started, started_at=stats.started_at
                )
            except Exception as exc:  # the page is only a view: the run goes on without it
                log.warning("report.html could not be updated: %s", exc)

    def _keep(self, timeline: Timeline) -> None:
        """Store the pass's requests over time for the report; a report without them is
        better than a run that fails here (a full disk is reported by the reports' writing)."""
        try:
            self._journal.set_meta(timeline=timeline.to_dict())
        except (sqlite3.Error, OSError) as exc:
            log.warning("the requests over time could not be stored for the report: %s", exc)

    def _sending(
        self, worker: _Worker, loader: _Loader, rows_ready: asyncio.Event, stopper: Stopper
    ) -> list[asyncio.Task[None]]:
        """The feeder and the worker tasks, joined by a queue of a few rows per worker."""
        workers = self._settings.concurrency or DEFAULT_WORKERS
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=workers * 2)
        feeder = _feed(
            self._journal, queue, workers=workers, loaded=loader.complete,
            rows_ready=rows_ready, stopper=stopper,
        )  # fmt: skip
        return [asyncio.create_task(feeder)] + [
            asyncio.create_task(worker.run(queue)) for _ in range(workers)
        ]

    async def _wait(
        self, tasks: list[asyncio.Task[None]], stopper: Stopper
    ) -> BaseException | None:
        """Run the tasks to their end; what ended them early, if anything."""
        error: BaseException | None = None
        with stopper.on_signals(tasks):
            try:
                await asyncio.gather(*tasks)
            except asyncio.CancelledError as exc:
                if not stopper.hard:  # a hard stop cancels the tasks on purpose
                    error = exc
            except Exception as exc:
                error = exc
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                # Rows caught mid-flight by a hard stop may have been created.
                if stopper.hard:
                    self._journal.recover()
        return error


def _unavailable(settings: Settings, last: Decision) -> UnavailableError:
    seen = f"HTTP {last.status}" if last.status is not None else last.result.error_code
    return UnavailableError(
        f"The API at {settings.base_url} looks unavailable: {settings.breaker} requests in a "
        f"row got no clear answer (timeouts, 5xx or dropped connections; the last: {seen}). "
        "No new row was started, and every row not sent stays pending (--breaker N sets how "
        "many failures stop a run; 0 never stops)."
    )


def _log_row(row: int, result: Result) -> None:
    if result.state == "scheduled":
        # results.csv has every call_id; a line per call in run.log only with --verbose (a
        # logging record costs as much as the journal's write of the row).
        log.debug("row %d scheduled call_id=%s", row, result.call_id)
    else:
        log.info(
            "row %d %s http=%s %s: %s",
            row,
            result.state,
            result.http_status,
            result.error_code,
            result.error,
        )
