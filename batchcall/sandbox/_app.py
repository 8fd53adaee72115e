"""The sandbox's HTTP face: `POST /api/v1/create-phone-call` as the spec describes it, plus
admin endpoints under `/_sandbox/`, a path clearly outside the Voxworks API.

A create request passes these steps, in this order, and stops at the first that answers:

1. bearer auth (401), so a stranger can neither spend nor read the key's quota;
2. the rate limit (429 with Retry-After), decided at arrival; a 429 is never executed;
3. latency (the gateway has decided; the service now takes its time);
4. the body (400), blocked phones (400) and the team (404);
5. injected faults that create nothing: 503, then 500;
6. Idempotency-Key: the same key and body replays the stored 201, another body is a 400;
7. create the call, then injected faults after creation: 500, or a connection cut mid-answer.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._config import RATE_FIELDS, SandboxConfig
from ._ratelimit import Decision, Quota
from ._request import BadRequest, e164, fingerprint, parse_body
from ._store import TEAM_FROM_NUMBERS, TEAM_SCRIPT_IDS, Store

API_PATH = "/api/v1/create-phone-call"
ADMIN_PREFIX = "/_sandbox"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "message": message}, status, headers=headers)


class DroppedResponse(Response):
    """Promises a full body, sends half of it, and returns, so the server cuts the connection.

    The client has sent its request and the call exists, but it sees the connection end early
    (httpx raises RemoteProtocolError), which is exactly the ambiguity the runner must handle.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )


class Sandbox:
    """The state behind one app: settings, quota, store, statistics and the seeded RNG."""

    def __init__(self, config: SandboxConfig, *, clock: Callable[[], float]) -> None:
        self.config = config.with_key()
        self.clock = clock
        self.store = Store(db_path=self.config.db_path)
        self.rng = random.Random(self.config.seed)
        self.quota = self._new_quota()
        self.blocked = self._blocked()
        self._new_stats()

    def _blocked(self) -> frozenset[str]:
        # Normalised once per change, not per request: numbers may be given in any format.
        return frozenset(e164(phone) or phone for phone in self.config.reject_phones)

    def _new_quota(self) -> Quota | None:
        c = self.config
        if c.limit is None:
            return None
        return Quota(
            kind=c.kind,
            limit=c.limit,
            window=c.window,
            other_client_share=c.other_client_share,
            limit_change_at=c.limit_change_at,
            limit_after=c.limit_after,
        )

    def _new_stats(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.requests = 0
        self.replays = 0
        self.dropped = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_request_at: float | None = None
        self.created_at: list[float] = []

    def reconfigure(self, changes: dict[str, Any]) -> None:
        self.config = self.config.changed(changes)
        if RATE_FIELDS & set(changes):
            self.quota = self._new_quota()
        if "seed" in changes:
            self.rng = random.Random(self.config.seed)
        self.blocked = self._blocked()

    def reset(self) -> None:
        self.store.reset()
        self.quota = self._new_quota()
        self.rng = random.Random(self.config.seed)
        self._new_stats()

    def stats(self) -> dict[str, Any]:
        created = self.created_at
        span = created[-1] - created[0] if len(created) > 1 else 0.0
        quota = self.quota
        return {
            "requests": self.requests,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "rate_limited": self.by_status[429],
            "created": len(created),
            "replays": self.replays,
            "dropped": self.dropped,
            "max_in_flight": self.max_in_flight,
            "first_request_at": self.first_request_at,
            "created_at": list(created),
            # Calls per second between the first and the last creation.
            "achieved_rate": (len(created) - 1) / span if span > 0 else None,
            "limit": quota.limit if quota else None,
            "other_client": {
                "allowed": quota.other_allowed if quota else 0,
                "refused": quota.other_refused if quota else 0,
            },
        }

    # --- the create-phone-call steps ---------------------------------------------------------

    def check_auth(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization")
        if header is None:
            message = "Missing Authorization header"
        else:
            scheme, _, key = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                message = "Malformed Authorization header: expected 'Bearer YOUR_API_KEY'"
            elif secrets.compare_digest(key.strip().encode(), str(self.config.api_key).encode()):
                return None
            else:
                message = "Invalid API key"
        return _error(401, message, {"WWW-Authenticate": "Bearer"})

    def rate_headers(self, decision: Decision | None) -> dict[str, str]:
        mode = self.config.headers
        if decision is None or mode == "never" or (mode == "on_429" and decision.allowed):
            return {}
        return {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
        }

    def retry_after(self, seconds: float) -> str:
        whole = max(1, math.ceil(seconds))
        if self.config.retry_after_format == "http-date":
            return formatdate(math.ceil(time.time()) + whole, usegmt=True)
        return str(whole)

    def draw(self, probability: float) -> bool:
        # Always draw, so one fault's setting never shifts another's sequence.
        return self.rng.random() < probability

    async def create_phone_call(self, request: Request) -> Response:
        refused = self.check_auth(request)
        if refused is not None:
            return refused
        decision = self.quota.decide(self.clock()) if self.quota else None
        headers = self.rate_headers(decision)
        if decision is not None and not decision.allowed:
            headers["Retry-After"] = self.retry_after(decision.retry_after)
            return _error(429, "Rate limit exceeded", headers)
        c = self.config
        delay = c.latency + (self.rng.uniform(0, c.latency_jitter) if c.latency_jitter else 0.0)
        if delay:
            await asyncio.sleep(delay)
        try:
            body, call = parse_body(await request.body())
        except BadRequest as exc:
            return _error(400, str(exc), headers)
        if call.phone_number in self.blocked:
            return _error(400, f"contact phone number {call.phone_number} is blocked", headers)
        if call.from_number not in TEAM_FROM_NUMBERS:
            return _error(
                404, f"from_number {call.from_number} does not belong to your team", headers
            )
        if call.script_id not in TEAM_SCRIPT_IDS:
            return _error(404, f"script_id {call.script_id} was not found", headers)
        fault_503, fault_before, fault_after, fault_drop = (
            self.draw(c.fault_503),
            self.draw(c.fault_500_before),
            self.draw(c.fault_500_after),
            self.draw(c.fault_drop_after),
        )
        if fault_503:
            headers["Retry-After"] = self.retry_after(c.retry_after_503)
            return _error(503, "Service temporarily unavailable", headers)
        if fault_before:
            return _error(500, "Internal server error", headers)
        key = request.headers.get("idempotency-key")
        body_print = fingerprint(body)
        stored = self.store.replay(key) if key is not None else None
        if stored is not None:
            if stored[0] != body_print:
                return _error(
                    400,
                    "Idempotency-Key was already used with a different request body",
                    headers,
                )
            self.replays += 1
            answer = stored[1]
        else:
            answer = self.store.create(call, idempotency_key=key, fingerprint=body_print)
            self.created_at.append(time.time())
        if fault_after:
            return _error(500, "Internal server error", headers)
        if fault_drop:
            self.dropped += 1
            return DroppedResponse(
                JSONResponse(answer).body, 201, headers, media_type="application/json"
            )
        return JSONResponse(answer, 201, headers=headers)


def create_app(config: SandboxConfig, *, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox.config.api_key` is the key it accepts."""
    sandbox = Sandbox(config, clock=clock)

    async def create_phone_call(request: Request) -> Response:
        sandbox.requests += 1
        if sandbox.first_request_at is None:
            sandbox.first_request_at = time.time()
        sandbox.in_flight += 1
        sandbox.max_in_flight = max(sandbox.max_in_flight, sandbox.in_flight)
        try:
            response = await sandbox.create_phone_call(request)
        finally:
            sandbox.in_flight -= 1
        if not isinstance(response, DroppedResponse):
            sandbox.by_status[response.status_code] += 1
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path == API_PATH:  # a wrong method on the endpoint: count its 405
            sandbox.requests += 1
            sandbox.by_status[exc.status_code] += 1
        return _error(exc.status_code, exc.detail, dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(500, "Internal server error")

    app = Starlette(
        routes=[Route(API_PATH, create_phone_call, methods=["POST"]), *_admin_routes(sandbox)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.sandbox = sandbox
    return app


def _admin_routes(sandbox: Sandbox) -> list[Route]:
    """The admin endpoints, under ADMIN_PREFIX, behind the same bearer key as the API."""

    def admin(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            refused = sandbox.check_auth(request)
            if refused is not None:
                return refused
            return await handler(request)

        return endpoint

    async def calls(request: Request) -> Response:
        return JSONResponse(sandbox.store.calls())

    async def contacts(request: Request) -> Response:
        return JSONResponse(sandbox.store.contacts())

    async def stats(request: Request) -> Response:
        return JSONResponse(sandbox.stats())

    async def config_endpoint(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await request.json()
            except ValueError:
                return _error(400, "config changes must be a JSON object")
            if not isinstance(changes, dict):
                return _error(400, "config changes must be a JSON object")
            try:
                sandbox.reconfigure(changes)
            except (TypeError, ValueError) as exc:
                return _error(400, str(exc))
        return JSONResponse(sandbox.config.public())

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"success": True})

    return [
        Route(f"{ADMIN_PREFIX}/calls", admin(calls), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/contacts", admin(contacts), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/stats", admin(stats), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/config", admin(config_endpoint), methods=["GET", "POST"]),
        Route(f"{ADMIN_PREFIX}/reset", admin(reset), methods=["POST"]),
    ]
