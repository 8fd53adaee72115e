"""Running the sandbox under uvicorn on loopback: in a thread of this process, or in a child.

Both ways return only once the server accepts connections, and both are driven the same way
afterwards, over HTTP through the admin endpoints, so a test need not care which it got.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess as sp
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from ._app import ADMIN_PREFIX, create_app
from ._config import SandboxConfig
from ._options import config_args

HOST = "127.0.0.1"
READY_LINE = "batchcall sandbox listening on "


class _QuietDrop(logging.Filter):
    """Hides uvicorn's complaint about the responses the sandbox cuts off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def quiet_deliberate_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrop) for f in logger.filters):
        logger.addFilter(_QuietDrop())


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that calls `on_started` once it is accepting connections."""

    def __init__(self, config: uvicorn.Config, *, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def bind(port: int) -> socket.socket:
    """A socket bound on loopback; port 0 picks a free one, with no window for another to take."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it Nagle plus delayed ACKs add 40 ms to every answer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


def uvicorn_config(
    app: Any, *, log_config: Any = None, log_level: str = "warning"
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_config=log_config,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )


class RunningSandbox:
    """A sandbox that is up: where it is, its key, and its admin endpoints. A context manager."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        stop: Callable[[], None],
        config: SandboxConfig,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.config = config
        self._stop = stop
        self._stopped = False
        self._admin = httpx.Client(
            base_url=base_url + ADMIN_PREFIX,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10.0,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"RunningSandbox(base_url={self.base_url!r})"

    def _get(self, path: str) -> Any:
        response = self._admin.get(path)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._admin.post(path, json=body)
        if response.status_code == 400:
            raise ValueError(response.json()["message"])
        response.raise_for_status()
        return response.json()

    def calls(self) -> list[dict[str, Any]]:
        """Every call the sandbox created, oldest first."""
        return self._get("/calls")

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact, as last upserted."""
        return self._get("/contacts")

    def stats(self) -> dict[str, Any]:
        """Request counts by status, 429s, calls created, replays, creation times."""
        return self._get("/stats")

    def configure(self, **changes: Any) -> None:
        """Change rate-limit, fault, latency or blocked-phone settings while it runs."""
        if "reject_phones" in changes:
            changes["reject_phones"] = sorted(changes["reject_phones"])
        self._post("/config", changes)

    def reset(self) -> None:
        """Forget every call, contact, key record and statistic; the quota starts afresh."""
        self._post("/reset", {})

    def stop(self) -> None:
        """Shut the server down; waits a bounded time. Calling it twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        self._admin.close()
        self._stop()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _start_in_thread(config: SandboxConfig, port: int, timeout: float) -> RunningSandbox:
    app = create_app(config)
    started = threading.Event()
    quiet_deliberate_drops()
    server = NotifyingServer(uvicorn_config(app), on_started=started.set)
    sock = bind(port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="batchcall-sandbox", daemon=True
    )
    thread.start()
    if not started.wait(timeout):
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        raise RuntimeError(f"the sandbox did not start within {timeout} s")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        sock.close()
        app.state.sandbox.store.close()

    host, bound_port = sock.getsockname()
    return RunningSandbox(
        base_url=f"http://{host}:{bound_port}",
        api_key=str(app.state.sandbox.config.api_key),
        stop=stop,
        config=app.state.sandbox.config,
    )


def _start_in_child(config: SandboxConfig, port: int, timeout: float) -> RunningSandbox:
    env = dict(os.environ, VOXWORKS_API_KEY=str(config.api_key), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "batchcall.sandbox", "--port", str(port), *config_args(config)]
    child = sp.Popen(command, env=env, stdout=sp.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # keeps reading, so the child never blocks on a full pipe
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, name="batchcall-sandbox-stdout", daemon=True).start()

    def stop() -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout)
            except sp.TimeoutExpired:
                child.kill()
                child.wait(timeout)

    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            stop()
            raise RuntimeError(f"the sandbox did not start within {timeout} s") from None
        if line is None:
            stop()
            raise RuntimeError(f"the sandbox exited at start with code {child.returncode}")
        if line.startswith(READY_LINE):
            base_url = line[len(READY_LINE) :].strip()
            break
    return RunningSandbox(base_url=base_url, api_key=str(config.api_key), stop=stop, config=config)


def start_sandbox(
    config: SandboxConfig | None = None,
    *,
    subprocess: bool = False,
    port: int = 0,
    timeout: float = 15.0,
) -> RunningSandbox:
    """Start a sandbox on 127.0.0.1 (port 0: any free port); returns once it accepts connections.

    `subprocess=True` runs it as `python -m batchcall.sandbox` in a child process, for tests that
    want a server outside their own process; otherwise it runs in a daemon thread.
    """
    config = (config or SandboxConfig()).with_key()
    if subprocess:
        return _start_in_child(config, port, timeout)
    return _start_in_thread(config, port, timeout)
