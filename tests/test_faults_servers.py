"""Bad servers: a trickling body, silence, 500s to everything. Each run ends in bounded time
with a clear answer, rows `unknown` or left `pending` by the circuit breaker, and never hangs.

The servers are tiny real HTTP servers on 127.0.0.1 (`TinyServer`), each with a bounded life;
the runs are the installed `batchcall` in a child process, as a user starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, cli, read_results, write_contacts

from batchcall._dispatch import Breaker, Decision, Dispatcher
from batchcall._errors import UnavailableError
from batchcall._journal import Job, Result
from batchcall._limiter import NO_REPLY, Gate, Reply
from batchcall.sandbox import SandboxConfig, start_sandbox

KEY = "sk_test_faults_0123456789"
ROWS = 40


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body)


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class TinyServer:
    """A real HTTP/1.1 server on 127.0.0.1 that answers every request with `handler`.

    It runs its own event loop in a daemon thread, remembers every request it read and the
    most connections it had open at once, and lives at most `lifetime` seconds, so a test that
    goes wrong cannot leave it behind.
    """

    handler: Handler
    lifetime: float = 120.0
    requests: list[Request] = field(default_factory=list)
    open_now: int = 0
    open_most: int = 0
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def running(self) -> Iterator[TinyServer]:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        stop: asyncio.Future[None] = loop.create_future()

        async def serve() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), self.lifetime)
            server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        assert started.wait(10), "the tiny server did not start"
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
            thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.open_now += 1
        self.open_most = max(self.open_most, self.open_now)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                await self.handler(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on us: what these servers are for
        finally:
            self.open_now -= 1
            writer.close()

    def keys(self) -> Counter[str]:
        """How many requests each Idempotency-Key (each row) brought."""
        return Counter(r.headers.get("idempotency-key", "") for r in self.requests)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None  # the client closed between requests
    line, *fields = head.decode("latin-1").split("\r\n")
    method, path, _ = line.split(" ", 2)
    headers = {}
    for item in fields:
        name, sep, value = item.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


def respond(status: int, body: bytes | str, content_type: str = "application/json") -> Handler:
    """A handler answering every request with `status` and `body`, keeping the connection."""
    payload = body.encode() if isinstance(body, str) else body

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    return handler


async def trickle(request: Request, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then one byte of the body a second, for ever."""
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: 1000000\r\n\r\n")
    await writer.drain()
    while True:
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(1.0)


async def silence(request: Request, writer: asyncio.StreamWriter) -> None:
    """Read the request, then say nothing until the client hangs up."""
    await asyncio.sleep(3600)


def _run(tmp_path: Path, server: TinyServer, *extra: str, rows: int = ROWS):
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(rows))
    out = tmp_path / "run"
    started = time.monotonic()
    result = cli(
        "run", str(source), "--from-number", FROM, "--script-id", SCRIPT,
        "--base-url", server.base_url, "--out", str(out), "--timeout", "2", *extra,
        key=KEY, cwd=tmp_path, timeout=90,
    )  # fmt: skip
    seconds = time.monotonic() - started
    return result, out, seconds


def _assert_clear_answer(result, out: Path, server: TinyServer, seconds: float) -> Counter[str]:
    """The run ended within 60 s, with every row unknown or (breaker) pending, each row sent
    at most once, and a message that names the way on."""
    assert seconds < 60, f"the run took {seconds:.1f}s"
    assert "Traceback" not in result.stderr, result.stderr
    rows = read_results(out / "results.csv")
    outcomes = Counter(r["outcome"] for r in rows)
    assert set(outcomes) <= {"unknown", "pending"}, outcomes
    assert sum(outcomes.values()) == ROWS
    assert max(server.keys().values()) == 1, "a row was sent twice"
    assert len(server.requests) == outcomes["unknown"]
    if result.returncode == 3:
        assert "looks unavailable" in result.stderr
        assert f"batchcall resume {out}" in result.stderr
    else:
        assert result.returncode == 1 and outcomes == {"unknown": ROWS}, result.stderr
    return outcomes


def test_a_trickling_server_makes_rows_unknown_within_the_timeout_not_never(tmp_path):
    """A server that sends its headers and then one byte a second would hold each row forever
    under per-read timeouts. With --timeout 2 each request gives up after 2 s in all: the run
    ends in seconds, its rows `unknown` (error code `timeout`) or left pending by the breaker."""
    with TinyServer(trickle).running() as server:
        result, out, seconds = _run(tmp_path, server)
    _assert_clear_answer(result, out, server, seconds)
    codes = {
        r["error_code"] for r in read_results(out / "results.csv") if r["outcome"] != "pending"
    }
    assert codes == {"timeout"}
    print(f"trickling server: exit {result.returncode} after {seconds:.1f}s")


def test_a_silent_server_trips_the_breaker_and_the_run_ends_with_exit_3(tmp_path):
    """A server that accepts connections and never answers: requests time out together (not
    one by one), the breaker opens after 10 of them, and the run exits 3 saying the API looks
    unavailable, with the exact resume command; rows not yet started, if any, stay pending."""
    with TinyServer(silence).running() as server:
        result, out, seconds = _run(tmp_path, server)
    _assert_clear_answer(result, out, server, seconds)
    assert result.returncode == 3
    print(f"silent server: exit {result.returncode} after {seconds:.1f}s")


def test_a_server_answering_500_to_everything_stops_after_ten_and_resume_finishes(tmp_path):
    """Every request gets a 500: after 10 in a row the breaker stops the run (exit 3), the 10
    are `unknown` (the call may exist) and the rest `pending`. Once the API is back, `resume`
    sends only the pending rows, each once; the unknown ones are not sent again."""
    with TinyServer(respond(500, '{"success": false, "message": "boom"}')).running() as server:
        result, out, seconds = _run(tmp_path, server)
    outcomes = _assert_clear_answer(result, out, server, seconds)
    assert result.returncode == 3 and outcomes["pending"] > 0
    assert 10 <= outcomes["unknown"] < ROWS
    print(f"500 server: exit {result.returncode} after {seconds:.1f}s, {dict(outcomes)}")

    with start_sandbox(SandboxConfig(api_key=KEY)) as sandbox:
        again = cli("resume", str(out), "--base-url", sandbox.base_url, key=KEY, cwd=tmp_path)
        calls = sandbox.calls()
    assert again.returncode == 1, again.stderr  # the unknown rows still need a look
    rows = read_results(out / "results.csv")
    after = Counter(r["outcome"] for r in rows)
    assert after == {"unknown": outcomes["unknown"], "scheduled": outcomes["pending"]}
    phones = [c["phone_number"] for c in calls]
    assert len(phones) == len(set(phones)) == outcomes["pending"]
    unknown = {r["phone_e164"] for r in rows if r["outcome"] == "unknown"}
    assert not unknown & set(phones)


def test_timeouts_in_flight_run_together_when_the_breaker_is_off(tmp_path):
    """With --breaker 0 a silent server times out every row; those timeouts run side by side
    (many connections open at once), so 40 rows take a few timeouts' time, not 40 x 2 s."""
    with TinyServer(silence).running() as server:
        result, out, seconds = _run(tmp_path, server, "--breaker", "0")
    _assert_clear_answer(result, out, server, seconds)
    assert result.returncode == 1
    assert seconds < 20, f"{seconds:.1f}s: timeouts went one at a time"
    assert server.open_most >= 10
    print(f"silent server, breaker off: {seconds:.1f}s, {server.open_most} connections at once")


def test_resume_and_retry_take_breaker_and_a_bad_value_is_refused(tmp_path):
    """`--breaker` is a setting of run, resume and retry; a negative one is refused with
    exit 2 naming it, before anything is sent."""
    source = write_contacts(tmp_path / "contacts.csv", au_mobiles(2))
    bad = cli(
        "run", str(source), "--from-number", FROM, "--script-id", SCRIPT, "--breaker", "-1",
        "--base-url", "http://127.0.0.1:9", key=KEY, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "breaker" in bad.stderr
    for command in ("run", "resume", "retry"):
        shown = cli(command, "--help", key=None, cwd=tmp_path)
        assert "--breaker N" in shown.stdout


# --- the breaker's rules, on httpx.MockTransport ---------------------------------------------


def _decision(status: int | None) -> Decision:
    return Decision(Result("unknown", status), status=status, ambiguous=True)


def test_the_breaker_opens_after_n_unwell_answers_in_a_row_only():
    """Timeouts and 5xx count; any other answer (201, 400, 429) starts the count again; the
    breaker calls its trip once, with the answer that opened it; 0 never opens."""
    tripped: list[Decision] = []
    breaker = Breaker(3, tripped.append)
    for status in (500, None, 201, 503, None, 429, 502, 500):
        breaker.record(_decision(status))
    assert not breaker.is_open
    breaker.record(_decision(None))
    assert breaker.is_open and [d.status for d in tripped] == [None]
    breaker.record(_decision(500))
    assert len(tripped) == 1
    never = Breaker(0)
    for _ in range(1000):
        never.record(_decision(None))
    assert not never.is_open


class _Log:
    stopping = False

    def mark_sending(self, row: int, attempts: int) -> None:
        pass


class _Gate:
    @contextlib.asynccontextmanager
    async def permit(self):  # type: ignore[no-untyped-def]
        class Permit:
            def learn(self, reply: object) -> None:
                return None

        yield Permit()


def _send(handler, breaker: Breaker, **kwargs: object):
    async def go():
        client = httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(handler)
        )
        dispatcher = Dispatcher(client, _Gate(), _Log(), breaker=breaker, sleep=_no_sleep, **kwargs)
        try:
            return await dispatcher.send(Job(1, {"x": 1}, "k-1", 0))
        finally:
            await client.aclose()

    return asyncio.run(go())


async def _no_sleep(seconds: float) -> None:
    return None


def test_an_open_breaker_sends_a_never_executed_row_back_to_pending():
    """A row that only drew 503s (never executed) is not retried once the breaker is open:
    the dispatcher raises UnavailableError, which puts it back to pending for resume."""
    answers: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(503)
        return httpx.Response(503, json={"success": False, "message": "busy"})

    with pytest.raises(UnavailableError):
        _send(handler, Breaker(1))
    assert answers == [503]


def test_an_open_breaker_keeps_the_outcome_of_a_row_that_may_have_been_executed():
    """With --retry-ambiguous, a row whose 500 may have created the call is not re-sent into an
    API the breaker gave up on: it keeps its `unknown` outcome."""
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(500, text="boom")

    result, attempts = _send(handler, Breaker(1), retry_ambiguous=True)
    assert (result.state, result.error_code, attempts, len(sent)) == (
        "unknown",
        "server_error",
        1,
        1,
    )


def test_the_gate_opens_its_cap_once_a_request_times_out_before_any_answer():
    """The gate sends its first request alone until an answer says how slow the API is. If
    that request times out instead, the cap opens as for an API that slow, so the next rows
    time out side by side rather than one by one; an API that answers is paced as before."""
    now = [0.0]

    async def no_sleep(seconds: float) -> None:
        now[0] += seconds

    async def one(gate: Gate, seconds: float, reply: Reply) -> None:
        async with gate.permit() as permit:
            now[0] += seconds
            permit.learn(reply)

    silent = Gate(clock=lambda: now[0], sleep=no_sleep)
    assert silent.concurrency == 1
    asyncio.run(one(silent, 2.0, NO_REPLY))  # a 2 s timeout, no answer
    assert silent.concurrency > 10

    answering = Gate(clock=lambda: now[0], sleep=no_sleep)
    asyncio.run(one(answering, 0.01, Decision(Result("scheduled", 201), status=201)))
    assert answering.concurrency <= 3  # rate x 10 ms is small: a few at most
