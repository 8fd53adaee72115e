"""The exceptions batchcall raises, each meant to be shown to a user.

    BatchCallError                 exit code 1 unless a subclass says otherwise
    ├── UsageError                 exit 2: a bad option or configuration, nothing was sent
    │   └── InputError             exit 2: the input file cannot be used as it is
    │       └── SameInputError     exit 2: this file was already run in the reports directory
    ├── AbortedError               exit 3: the run stopped early (401, fatal), rows left pending
    │   ├── AuthError              exit 3: the API rejected the key
    │   ├── TlsError               exit 3: the server's certificate did not verify
    │   └── LedgerError            exit 3: the contact ledger could not be read or written
    └── InterruptedRun             exit 130: Ctrl-C; the journal is intact

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


class LedgerError(AbortedError):
    """The contact ledger could not be read or written mid-run: no row may be sent unchecked,
    so the run stops sending and leaves the rest pending (exit 3)."""


class InterruptedRun(BatchCallError):
    """The run was interrupted (Ctrl-C); `batchcall resume DIR` continues it."""

    exit_code = 130

    def __init__(self, message: str, run_dir: str | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
