"""run.log: the standard `logging` module, with phone numbers masked and the key never present.

The key is never passed to a logger in the first place; masking is for the personal data in
the log (phone numbers), which a support ticket may carry around. A bearer token is blanked
too, in case a library ever logs a header: the log must stay safe to attach to a ticket.

`--verbose` adds httpx's own line per request (method, URL, status): it names no key and no
phone, since both travel in headers and the body, never in the URL.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ._rundir import open_private

# A phone: seven or more digits, optionally led by + and broken by spaces, dots, dashes or
# brackets; not part of a longer word (a sha256, a run id) and not an ISO date or time.
_PHONE = re.compile(r"(?<![\w:.+-])(?!\d{4}-\d{2}-\d{2})(?:\+|\(?)\d(?:[ .\-()]*\d){6,}(?![\w:])")


_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")


def mask_phones(text: str) -> str:
    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        lead = "+" if match.group().startswith("+") else ""
        return f"{lead}{digits[:3]}{'*' * (len(digits) - 5)}{digits[-2:]}"

    return _PHONE.sub(_mask, text)


class MaskingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        # Mask the message only: the timestamp is ours and holds no personal data.
        record.message = _BEARER.sub(r"\1***", mask_phones(record.message))
        return super().formatMessage(record)


class _RunLogHandler(logging.StreamHandler[TextIO]):
    """run.log's handler. A write that fails for want of space raises to the code that logged,
    as a journal write would, so the run stops with a clear exit instead of printing logging's
    traceback and going on without its log."""

    def handleError(self, record: logging.LogRecord) -> None:
        failure = sys.exc_info()[1]
        if isinstance(failure, OSError) and failure.errno in (errno.ENOSPC, errno.EDQUOT):
            raise failure
        super().handleError(record)


@contextlib.contextmanager
def run_logging(run_dir: Path, *, verbose: bool = False) -> Iterator[Path]:
    """Attach a run.log handler to the `batchcall` logger for the duration of a run."""
    path = Path(run_dir) / "run.log"
    stream = _open_log(path)
    handler = _RunLogHandler(stream)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    loggers = [logging.getLogger("batchcall")]
    if verbose:
        loggers.append(logging.getLogger("httpx"))
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        # Not DEBUG unless asked: a record the handler would drop is then never even made.
        logger.setLevel(logging.DEBUG if verbose and logger.name == "batchcall" else logging.INFO)
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
        # A full disk was reported by the write that failed; closing must not raise it again
        # over whatever the run is ending with.
        with contextlib.suppress(OSError):
            stream.close()


def _open_log(path: Path) -> TextIO:
    """run.log for appending, created 0600; a symlink in its place is refused, not followed."""
    try:
        fd = open_private(path, os.O_WRONLY | os.O_APPEND, create=True)
    except FileExistsError:
        fd = open_private(path, os.O_WRONLY | os.O_APPEND, create=False)
    return os.fdopen(fd, "a", encoding="utf-8")
