"""Send one row: wait for the gate, POST, and turn what happened into the row's next state.

The retry policy follows one question: could the server have executed the request?
- Provably not (429, 503, connect errors, pool timeout): retry, it is safe.
- Provably yes or no with an answer (201, 400, 404): final.
- Maybe (500/502/504, read timeout, a connection dropped after sending): `unknown`, never
  retried unless the user opted in with --retry-ambiguous, and then with the same
  Idempotency-Key so a server that honours it replays instead of calling twice.
- 401: nothing was executed and nothing else will be; abort the whole run.

`Execution` is one sending pass over a run's journal: it feeds the `pending` rows to workers
that send each through the `Dispatcher` and record what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random as _random
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx
from pydantic import ValidationError

from ._config import Settings
from ._errors import AbortedError, AuthError, TlsError
from ._journal import Job, Journal, Result
from ._limiter import Gate, Reply, parse_retry_after, rate_headers
from ._models import CreateCallResponse, ErrorResponse
from ._prepare import Prepared
from ._windows import WindowPolicy

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


class GateLike(Protocol):
    """What the dispatcher needs of `limiter.Gate`; tests pass simpler gates."""

    def permit(self) -> contextlib.AbstractAsyncContextManager[PermitLike]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What one HTTP exchange said, and what to do about it; the gate learns from it too."""

    result: Result
    status: int | None = None  # None: no answer (a transport error)
    retry: bool = False  # safe to send again: the server provably did not execute it
    ambiguous: bool = False  # the call may exist
    retry_after: float | None = None  # the server's own wait, in seconds
    limit: int | None = None
    remaining: int | None = None

    @property
    def throttled(self) -> bool:
        return self.status == 429


def _message(response: httpx.Response) -> str:
    try:
        return ErrorResponse.model_validate_json(response.content).message
    except ValidationError:
        text = response.text.strip().replace("\n", " ")
        return text[:200] or response.reason_phrase


def classify(response: httpx.Response, *, now: float | None = None) -> Decision:
    """The decision for an answer; `now` (wall clock) reads an HTTP-date Retry-After."""
    status = response.status_code
    limit, remaining = rate_headers(response.headers)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now=time.time() if now is None else now
        )
    return dataclasses.replace(
        _outcome(response),
        status=status,
        limit=limit,
        remaining=remaining,
        retry_after=retry_after,
    )


def _outcome(response: httpx.Response) -> Decision:
    status = response.status_code
    if status in (200, 201):
        try:
            body = CreateCallResponse.model_validate_json(response.content)
        except ValidationError:
            return Decision(
                Result(
                    "unknown",
                    status,
                    error_code="unreadable_response",
                    error="The server accepted the request but its answer could not be read; "
                    "the call may exist.",
                ),
                ambiguous=True,
            )
        return Decision(
            Result("scheduled", status, call_id=body.call_id, contact_id=body.contact_id)
        )
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
                error=f"The API was unavailable (503): {_message(response)}. Retry later.",
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
    return Decision(Result("failed", status, error_code=code, error=_message(response)))


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


class Dispatcher:
    """Sends rows through one shared gate; all retry decisions live here."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        gate: GateLike,
        *,
        retry_ambiguous: bool = False,
        max_attempts: int = 5,
        max_throttled: int = 50,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._client = client
        self._gate = gate
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

    async def send(
        self, job: Job, *, before_send: Callable[[Job, int], None]
    ) -> tuple[Result, int]:
        """Send until final. Returns the row's result and its total attempts.

        `before_send(job, attempts)` runs after the gate admits the request and before it
        leaves; the runner commits `sending` there.
        """
        attempts = job.attempts
        failures = 0
        throttled = 0
        while True:
            attempts += 1
            decision, pause = await self._attempt(job, attempts, before_send)
            if decision.throttled:
                throttled += 1
                if throttled <= self._max_throttled:
                    # The gate already paused every worker; this row waits its turn.
                    await self._sleep(pause or 0.0)
                    continue
                return decision.result, attempts
            failures += 1
            if self._should_retry(decision, failures):
                await self._sleep(self._sleep_time(decision, failures))
                continue
            return decision.result, attempts

    async def _attempt(
        self, job: Job, attempts: int, before_send: Callable[[Job, int], None]
    ) -> tuple[Decision, float | None]:
        """One exchange inside one permit: the decision, and the gate's pause after a 429."""
        async with self._gate.permit() as permit:
            before_send(job, attempts)
            try:
                response = await self._client.post(
                    ENDPOINT, json=job.body, headers={"Idempotency-Key": job.idempotency_key}
                )
            except httpx.HTTPError as exc:
                if _tls_failure(exc):
                    # Retrying cannot fix a certificate, and it may mean someone is in the
                    # middle: stop the whole run, as for a 401.
                    raise TlsError(
                        f"The TLS certificate of {exc.request.url.host} did not verify "
                        f"({_tls_failure(exc)}). Nothing was sent; unsent rows stay pending."
                    ) from exc
                decision = classify_error(exc)
            else:
                decision = classify(response)
            pause = permit.learn(decision)
        if decision.status == 401:
            raise AuthError(
                "The API rejected the key (401). Check VOXWORKS_API_KEY or "
                "--api-key-file; unsent rows stay pending for `batchcall resume`."
            )
        return decision, pause


# --- one sending pass ------------------------------------------------------------------------

DEFAULT_WORKERS = 64


class _Stopping(Exception):
    """Raised before a new row leaves once the run is stopping (Ctrl-C or a 401)."""


class Progress(Protocol):
    """What the runner tells a progress display. The CLI's is a tqdm bar."""

    def set_total(self, total: int) -> None: ...

    def advance(self, rows: int, *, throttled: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class SendStats:
    """Timings and counts of one sending pass, for the summary."""

    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    first_sent: float | None = None
    last_done: float | None = None
    done: int = 0

    def rate(self) -> float | None:
        """Rows finished per second, from the first request to the last answer."""
        if self.first_sent is None or not self.last_done or self.last_done <= self.first_sent:
            return None
        return round(self.done / (self.last_done - self.first_sent), 2)


class Execution:
    """One pass of sending: a loader, a feeder and workers sharing a journal and a gate.

    The loader commits planned chunks to the journal; the feeder streams `pending` rows from the
    journal to the workers; each worker re-checks a timeless row's calling window, then sends
    it through the `Dispatcher` and records the result. So the first request leaves long before
    a big file is fully read, and memory does not grow with the file.
    """

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None,
        planned: Prepared | None,
        progress: Progress | None,
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.client = client
        self.planned = planned
        self.progress = progress
        self.run_id: str = journal.meta("run_id")
        self.stats = SendStats()
        self.gate = Gate(max_rate=settings.max_rate, concurrency=settings.concurrency)
        self.dispatcher: Dispatcher | None = None
        self.loaded = asyncio.Event()
        self.new_rows = asyncio.Event()
        self.stop = asyncio.Event()
        self.abort: AbortedError | None = None
        self.interrupted = False
        self.policy = WindowPolicy.from_settings(settings)
        self.timezone_column: int | None = journal.meta("timezone_column")

    async def load(self) -> None:
        if self.planned is not None:
            total = sum(self.journal.counts().values())
            async for chunk in self.planned:
                self.journal.add_rows(chunk, run_id=self.run_id)
                total += len(chunk)
                finished = sum(1 for record in chunk if record[4] != "pending")
                if self.progress:
                    self.progress.set_total(total)
                    self.progress.advance(finished, throttled=self.throttled())
                self.new_rows.set()
                if self.stop.is_set():
                    return
                # Let the workers send between chunks: the first request must not wait for
                # the whole file to be validated.
                await asyncio.sleep(0)
            self.journal.set_meta(load_complete=True)
        self.loaded.set()
        self.new_rows.set()

    async def feed(self, queue: asyncio.Queue[Job | None], workers: int) -> None:
        cursor = 0
        while not self.stop.is_set():
            jobs = self.journal.pending(after=cursor, limit=200)
            if not jobs:
                if self.loaded.is_set():
                    # A last look: the loader may have committed after our query.
                    jobs = self.journal.pending(after=cursor, limit=200)
                    if not jobs:
                        break
                else:
                    self.new_rows.clear()
                    await self.new_rows.wait()
                    continue
            for job in jobs:
                if self.stop.is_set():
                    break
                await queue.put(job)
                cursor = job.row
        # Only on a normal end: when the pass fails or is cancelled, the workers are cancelled
        # too, and waiting to hand them a sentinel through a full queue would hang forever.
        for _ in range(workers):
            await queue.put(None)

    def throttled(self) -> int:
        return self.gate.throttled

    def _before_send(self, job: Job, attempts: int) -> None:
        if self.stop.is_set() and attempts == job.attempts + 1:
            raise _Stopping  # do not start a new row once stopping
        if attempts == job.attempts + 1:
            self.journal.mark_sending(job.row, attempts)
        now = time.monotonic()
        if self.stats.first_sent is None:
            self.stats.first_sent = now
            log.info("first request sent after %.2fs", now - self.stats.started)

    def _place_now(self, job: Job) -> Job | None:
        """Re-check the calling window for a row with no time, just before it leaves.

        Validation placed it at "now", but a long run may reach it after its window closed;
        sending it without a time would ring the callee now, outside the legal hours.
        """
        if self.policy is None or "scheduled_time" in job.body:
            return job
        cells = self.journal.cells(job.row)
        col = self.timezone_column
        zone = cells[col].strip() or None if col is not None and col < len(cells) else None
        placement = self.policy.place(
            None,
            phone_e164=job.body["contact"]["phone_number"],
            row_timezone=zone,
            now=datetime.now(UTC),
        )
        if placement.error_code is not None:
            result = Result("failed", error_code=placement.error_code, error=placement.error)
            self.journal.record(job.row, result, attempts=job.attempts)
            return None
        if placement.moved and placement.when is not None:
            body = {**job.body, "scheduled_time": placement.when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            self.journal.replan(job.row, body)
            return dataclasses.replace(job, body=body)
        return job

    async def work(self, queue: asyncio.Queue[Job | None]) -> None:
        assert self.dispatcher is not None
        while (job := await queue.get()) is not None:
            if self.stop.is_set():
                continue
            placed = self._place_now(job)
            if placed is None:
                continue
            job = placed
            try:
                result, attempts = await self.dispatcher.send(job, before_send=self._before_send)
            except _Stopping:
                continue  # stopped before this row left: it stays pending
            except AbortedError as exc:
                # A 401 or a TLS failure: nothing was executed, so the row goes back to
                # pending for `resume`, and no other row is started.
                self.journal.transition(job.row, "pending")
                self.abort = exc
                self.stop.set()
                continue
            self.journal.record(job.row, result, attempts=attempts)
            self.stats.done += 1
            self.stats.last_done = time.monotonic()
            _log_row(job.row, result)
            if self.progress:
                self.progress.advance(1, throttled=self.throttled())

    interrupted_hard = False

    def _on_signal(self) -> None:
        if self.stop.is_set():
            # Second Ctrl-C: stop waiting for in-flight requests; they become `unknown`.
            self.interrupted_hard = True
            for task in self._tasks:
                task.cancel()
        self.interrupted = True
        self.stop.set()
        self.new_rows.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        workers = self.settings.concurrency or DEFAULT_WORKERS
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=workers * 2)
        if self.client is not None:
            self.dispatcher = Dispatcher(
                self.client, self.gate, retry_ambiguous=self.settings.retry_ambiguous
            )
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal)
                installed.append(sig)
        self._tasks: list[asyncio.Task[None]] = [asyncio.create_task(self.load())]
        if self.dispatcher is not None:
            self._tasks.append(asyncio.create_task(self.feed(queue, workers)))
            self._tasks += [asyncio.create_task(self.work(queue)) for _ in range(workers)]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=False)
        except asyncio.CancelledError:
            if not self.interrupted_hard:
                raise
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for sig in installed:
                loop.remove_signal_handler(sig)
            # Rows caught mid-flight by a hard stop may have been created.
            if self.interrupted_hard:
                self.journal.recover()


def _log_row(row: int, result: Result) -> None:
    if result.state == "scheduled":
        log.info("row %d scheduled call_id=%s", row, result.call_id)
    else:
        log.info(
            "row %d %s http=%s %s: %s",
            row,
            result.state,
            result.http_status,
            result.error_code,
            result.error,
        )
