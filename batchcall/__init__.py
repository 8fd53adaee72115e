"""batchcall: schedule a Voxworks call for every row of a spreadsheet.

Resumable, duplicate-safe and rate-adaptive. The Python API mirrors the CLI:

    import batchcall
    summary = batchcall.run("contacts.csv", from_number="+61291234567", script_id="...")
    summary.exit_code, summary.counts, summary.run_dir
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AbortedError,
    AuthError,
    BatchCallError,
    InputError,
    InterruptedRun,
    SameInputError,
    TlsError,
    UsageError,
)

_RUNNER = frozenset({"Summary", "resume", "retry", "run", "status", "validate"})


def __getattr__(name: str) -> object:
    # The runner pulls in pandas and httpx; importing it lazily keeps `batchcall.sandbox`
    # and the CLI's --help fast, and lets `batchcall.errors` load without them.
    if name in _RUNNER:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'batchcall' has no attribute {name!r}")


__all__ = [
    "AbortedError",
    "AuthError",
    "BatchCallError",
    "InputError",
    "InterruptedRun",
    "SameInputError",
    "Summary",
    "TlsError",
    "UsageError",
    "__version__",
    "resume",
    "retry",
    "run",
    "status",
    "validate",
]
