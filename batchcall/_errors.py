"""The exceptions batchcall raises, each meant to be shown to a user.

    BatchCallError                 exit code 1 unless a subclass says otherwise
    ├── UsageError                 exit 2: a bad option or configuration, nothing was sent
    │   ├── InputError             exit 2: the input file cannot be used as it is
    │   │   └── SameInputError     exit 2: this file was already run in the reports directory
    │   └── DamagedJournalError    exit 2: a run's journal is empty, truncated or corrupt
    ├── AbortedError               exit 3: the run stopped early (401, fatal), rows left pending
    │   ├── AuthError              exit 3: the API rejected the key
    │   ├── TlsError               exit 3: the server's certificate did not verify
    │   ├── UnavailableError       exit 3: the API looks down (the circuit breaker opened)
    │   ├── DiskFullError          exit 3: the disk holding the run directory is full
    │   └── LedgerError            exit 3: the contact ledger could not be read or written
    └── InterruptedRun             exit 130: Ctrl-C (SIGINT); the journal is intact
        ├── HungUpRun              exit 129: SIGHUP (the terminal closed)
        └── TerminatedRun          exit 143: SIGTERM (a scheduler or `kill` stopped it)

An interrupted run exits 128 plus the signal's number, as a shell reports a process killed by
that signal, so cron and Airflow see the same code whether or not batchcall caught the signal.

The CLI turns these into a message and an exit code; the runner never prints.
"""

from __future__ import annotations


class BatchCallError(Exception):
    """Base of every error batchcall shows to a user."""

    exit_code = 1


class UsageError(BatchCallError):
    """A bad option, config value or environment: nothing was sent."""

    exit_code = 2


class InputError(UsageError):
    """The input file is unreadable, or lacks a column or setting the run needs."""


class SameInputError(InputError):
    """The same input (by sha256) already has a run in this reports directory."""

    def __init__(self, message: str, previous_run: str) -> None:
        super().__init__(message)
        self.previous_run = previous_run


class DamagedJournalError(UsageError):
    """A run's journal cannot be read as one: it is refused, and left exactly as it is."""


class AbortedError(BatchCallError):
    """The run stopped sending before it was done; unsent rows stay pending."""

    exit_code = 3

    def __init__(self, message: str, run_dir: str | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class AuthError(AbortedError):
    """The API answered 401: the key is missing, malformed or wrong."""


class TlsError(AbortedError):
    """The server's TLS certificate did not verify; retrying cannot help."""


class UnavailableError(AbortedError):
    """Many requests in a row got no clear answer (timeouts, 5xx, dropped connections): the
    circuit breaker stopped starting rows, and the rest stay pending for `batchcall resume`."""


class DiskFullError(AbortedError):
    """The disk holding the run directory filled up: sending stopped at once, and every row
    not sent stays pending for `batchcall resume` once there is space."""


class LedgerError(AbortedError):
    """The contact ledger could not be read or written mid-run: no row may be sent unchecked,
    so the run stops sending and leaves the rest pending (exit 3)."""


class InterruptedRun(BatchCallError):
    """The run was interrupted (Ctrl-C); `batchcall resume DIR` continues it."""

    exit_code = 130
    signal_name = "SIGINT"

    def __init__(self, message: str, run_dir: str | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class HungUpRun(InterruptedRun):
    """The run got SIGHUP (its terminal or SSH session closed); it stopped as for Ctrl-C."""

    exit_code = 129
    signal_name = "SIGHUP"


class TerminatedRun(InterruptedRun):
    """The run got SIGTERM (a scheduler, systemd or `kill`); it stopped as for Ctrl-C."""

    exit_code = 143
    signal_name = "SIGTERM"


def interruption(signal_name: str) -> type[InterruptedRun]:
    """The error for a run stopped by the signal of that name (SIGINT, SIGTERM or SIGHUP)."""
    for kind in (InterruptedRun, HungUpRun, TerminatedRun):
        if kind.signal_name == signal_name:
            return kind
    raise ValueError(f"batchcall does not stop on {signal_name}")
