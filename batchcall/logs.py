"""run.log: the standard `logging` module, with phone numbers masked and the key never present.

The key is never passed to a logger in the first place; masking is for the personal data in
the log (phone numbers), which a support ticket may carry around.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

# A phone: seven or more digits, optionally led by + and broken by spaces, dots, dashes or
# brackets; not part of a longer word (a sha256, a run id) and not an ISO date or time.
_PHONE = re.compile(r"(?<![\w:.+-])(?!\d{4}-\d{2}-\d{2})(?:\+|\(?)\d(?:[ .\-()]*\d){6,}(?![\w:])")


def mask_phones(text: str) -> str:
    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        lead = "+" if match.group().startswith("+") else ""
        return f"{lead}{digits[:3]}{'*' * (len(digits) - 5)}{digits[-2:]}"

    return _PHONE.sub(_mask, text)


class MaskingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        # Mask the message only: the timestamp is ours and holds no personal data.
        record.message = mask_phones(record.message)
        return super().formatMessage(record)


@contextlib.contextmanager
def run_logging(run_dir: Path, *, verbose: bool = False) -> Iterator[Path]:
    """Attach a run.log handler to the `batchcall` logger for the duration of a run."""
    path = Path(run_dir) / "run.log"
    path.touch(mode=0o600)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("batchcall")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
