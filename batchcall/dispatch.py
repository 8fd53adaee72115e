"""Send one row: wait for the gate, POST, and turn what happened into the row's next state.

The retry policy follows one question: could the server have executed the request?
- Provably not (429, 503, connect errors, pool timeout): retry, it is safe.
- Provably yes or no with an answer (201, 400, 404): final.
- Maybe (500/502/504, read timeout, a connection dropped after sending): `unknown`, never
  retried unless the user opted in with --retry-ambiguous, and then with the same
  Idempotency-Key so a server that honours it replays instead of calling twice.
- 401: nothing was executed and nothing else will be; abort the whole run.
"""

from __future__ import annotations

import asyncio
import random as _random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from .errors import AuthError, TlsError
from .journal import Job, Result
from .limiter import parse_retry_after
from .models import CreateCallResponse, ErrorResponse

ENDPOINT = "/api/v1/create-phone-call"

# Errors raised before a single byte of the request could have been processed.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors after the request may have reached the server.
AMBIGUOUS = (
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
)


def _tls_failure(exc: BaseException) -> str | None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None


class GateLike(Protocol):
    """What the dispatcher needs of `limiter.Gate`; tests pass simpler gates."""

    async def acquire(self) -> Any: ...

    def release(
        self, permit: Any, *, status: int | None, headers: Mapping[str, str] | None
    ) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP exchange said, before the retry policy decides."""

    result: Result
    retry: bool = False  # safe to send again: the server provably did not execute it
    delay: float | None = None  # the server's own wait (Retry-After), if any
    ambiguous: bool = False


def _message(response: httpx.Response) -> str:
    try:
        return ErrorResponse.model_validate_json(response.content).message
    except ValidationError:
        text = response.text.strip().replace("\n", " ")
        return text[:200] or response.reason_phrase


def classify(response: httpx.Response) -> Attempt:
    status = response.status_code
    if status in (200, 201):
        try:
            body = CreateCallResponse.model_validate_json(response.content)
        except ValidationError:
            return Attempt(
                Result(
                    "unknown",
                    status,
                    error_code="unreadable_response",
                    error="The server accepted the request but its answer could not be read; "
                    "the call may exist.",
                ),
                ambiguous=True,
            )
        return Attempt(
            Result("scheduled", status, call_id=body.call_id, contact_id=body.contact_id)
        )
    if status == 401:
        return Attempt(
            Result("pending", status, error_code="unauthorized", error=_message(response))
        )
    if status == 429:
        return Attempt(
            Result(
                "failed",
                status,
                error_code="rate_limited",
                error="The API kept answering 429 (rate limited); retry the row later.",
            ),
            retry=True,
        )
    if status == 503:
        return Attempt(
            Result(
                "failed",
                status,
                error_code="unavailable",
                error=f"The API was unavailable (503): {_message(response)}. Retry later.",
            ),
            retry=True,
        )
    if status in (500, 502, 504):
        return Attempt(
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
    return Attempt(Result("failed", status, error_code=code, error=_message(response)))


def classify_error(exc: httpx.HTTPError) -> Attempt:
    name = type(exc).__name__
    if isinstance(exc, NOT_SENT):
        return Attempt(
            Result(
                "failed",
                error_code="connect_failed",
                error=f"Could not reach the API ({name}); nothing was sent. Retry later.",
            ),
            retry=True,
        )
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_lost"
    return Attempt(
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
        self.throttled = 0

    def _backoff(self, failures: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries so workers do not stampede.
        return self._random() * min(self._backoff_cap, self._backoff_base * 2**failures)

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
            permit = await self._gate.acquire()
            attempts += 1
            try:
                before_send(job, attempts)
            except BaseException:
                self._gate.release(permit, status=None, headers=None)
                raise
            try:
                response = await self._client.post(
                    ENDPOINT, json=job.body, headers={"Idempotency-Key": job.idempotency_key}
                )
            except httpx.HTTPError as exc:
                self._gate.release(permit, status=None, headers=None)
                if _tls_failure(exc):
                    # Retrying cannot fix a certificate, and it may mean someone is in the
                    # middle: stop the whole run, as for a 401.
                    raise TlsError(
                        f"The TLS certificate of {exc.request.url.host} did not verify "
                        f"({_tls_failure(exc)}). Nothing was sent; unsent rows stay pending."
                    ) from exc
                attempt = classify_error(exc)
            except BaseException:
                self._gate.release(permit, status=None, headers=None)
                raise
            else:
                wait = self._gate.release(
                    permit, status=response.status_code, headers=response.headers
                )
                if response.status_code == 401:
                    raise AuthError(
                        "The API rejected the key (401). Check VOXWORKS_API_KEY or "
                        "--api-key-file; unsent rows stay pending for `batchcall resume`."
                    )
                attempt = classify(response)
                if response.status_code == 429:
                    self.throttled += 1
                    throttled += 1
                    if throttled <= self._max_throttled:
                        # The gate already paused every worker; this row waits its turn.
                        await self._sleep(wait or 0.0)
                        continue
                    return attempt.result, attempts
                if response.status_code == 503:
                    delay = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
                    attempt = Attempt(
                        attempt.result,
                        retry=True,
                        delay=min(delay, self._backoff_cap) if delay else None,
                    )
            failures += 1
            retryable = attempt.retry or (attempt.ambiguous and self._retry_ambiguous)
            if retryable and failures < self._max_attempts:
                await self._sleep(max(attempt.delay or 0.0, self._backoff(failures)))
                continue
            return attempt.result, attempts
