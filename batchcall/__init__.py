"""batchcall: schedule a Voxworks call for every row of a spreadsheet.

Resumable, duplicate-safe and rate-adaptive. The Python API mirrors the CLI:

    import batchcall
    summary = batchcall.run("contacts.csv", from_number="+61291234567", script_id="...")
    summary.exit_code, summary.counts, summary.run_dir
"""

from ._config import Settings
from ._dispatch import Progress
from ._errors import (
    AbortedError,
    AuthError,
    BatchCallError,
    DamagedJournalError,
    DiskFullError,
    HungUpRun,
    InputError,
    InterruptedRun,
    LedgerError,
    SameInputError,
    TerminatedRun,
    TlsError,
    UnavailableError,
    UsageError,
)
from ._runner import Summary, resume, retry, run, status, validate
from ._version import __version__

__all__ = [
    "AbortedError",
    "AuthError",
    "BatchCallError",
    "DamagedJournalError",
    "DiskFullError",
    "HungUpRun",
    "InputError",
    "InterruptedRun",
    "LedgerError",
    "Progress",
    "SameInputError",
    "Settings",
    "Summary",
    "TerminatedRun",
    "TlsError",
    "UnavailableError",
    "UsageError",
    "__version__",
    "resume",
    "retry",
    "run",
    "status",
    "validate",
]
