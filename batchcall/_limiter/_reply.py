"""What one answer tells the gate: the `Reply` protocol and the readers of its rate headers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol


class Reply(Protocol):
    """What the gate learns from one answer; dispatch's `Decision` is one."""

    @property
    def status(self) -> int | None: ...  # None: no answer came (a transport error)

    @property
    def limit(self) -> int | None: ...  # X-RateLimit-Limit

    @property
    def remaining(self) -> int | None: ...  # X-RateLimit-Remaining

    @property
    def retry_after(self) -> float | None: ...  # seconds, already parsed


@dataclass(frozen=True, slots=True)
class NoReply:
    """The answer of a request that got none (a transport error, or it never left)."""

    status: None = None
    limit: None = None
    remaining: None = None
    retry_after: None = None


NO_REPLY = NoReply()


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from `now` (wall clock), given `Retry-After` as seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def rate_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """`X-RateLimit-Limit` and `X-RateLimit-Remaining`, or None where absent or unreadable."""
    return _header_int(headers, "X-RateLimit-Limit"), _header_int(headers, "X-RateLimit-Remaining")


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None
