"""Fixtures shared by the whole suite; plain helpers live in e2e_support.py (benchmarks use them).

- Every test runs with no BATCHCALL_* or VOXWORKS_* variable in its environment, so a
  developer's own key or settings can neither leak into a run nor change what a test sees.
- `make_sandbox` / `sandbox`: a real sandbox on loopback, stopped when the test ends.
- `invoke`: the command line in-process (click's runner), from the test's own directory.
- `sample`: the README's sample contacts, with their dates kept in the future.
- The clock guard: in `.ci/run`'s second pass (`faketime +365d`, with
  BATCHCALL_TEST_CLOCK_AHEAD set to the real date) the session refuses to start unless the
  clock really is a year ahead, so that pass cannot quietly run on today's date.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from e2e_support import AHEAD, CLOCK_AHEAD_OF, SAMPLE, SCRUBBED_PREFIXES, with_future_dates

from batchcall._cli import main
from batchcall.sandbox import RunningSandbox, SandboxConfig, start_sandbox


def pytest_report_header() -> str:
    if CLOCK_AHEAD_OF is None:
        return "clock: the real one"
    return f"clock: {datetime.now(UTC):%Y-%m-%d}, moved ahead of the real {CLOCK_AHEAD_OF}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if CLOCK_AHEAD_OF is not None and datetime.now(UTC).date() < CLOCK_AHEAD_OF + AHEAD:
        raise pytest.UsageError(
            f"BATCHCALL_TEST_CLOCK_AHEAD={CLOCK_AHEAD_OF} says the clock is a year ahead, but "
            f"this process sees {datetime.now(UTC):%Y-%m-%d}: run the suite under "
            "`faketime -f +365d`."
        )


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process runs read os.environ: take every batchcall and Voxworks setting out of it.

    The default contact ledger lives in the user's state directory: each test gets its own
    (XDG_STATE_HOME, which its children inherit), so no test's calls block another's, and the
    suite never writes into the developer's real ledger.
    """
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """`make_sandbox(limit=20, subprocess=True, ...)` starts a sandbox with that config (in a
    child process if asked); every one is stopped when the test ends."""
    with contextlib.ExitStack() as running:

        def make(*, subprocess: bool = False, **config: Any) -> RunningSandbox:
            started = start_sandbox(SandboxConfig(**config), subprocess=subprocess)
            return running.enter_context(started)

        yield make


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A sandbox with the default settings and a throwaway key, fresh for this test."""
    return make_sandbox()


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`invoke(*args, env={...})` runs `batchcall ARGS` in-process from `tmp_path`."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], env=env)

    return run


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """sample_data/contacts.csv copied to tmp_path, its dated rows kept in the future.

    The same 50 rows (47 valid, 3 broken), so it gives what the README promises on any
    clock. Only the tests of the README's own command read the file as shipped.
    """
    return with_future_dates(SAMPLE, tmp_path)
