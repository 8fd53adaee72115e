"""The sandbox's settings: one dataclass, checked on creation and on every run-time change."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("fixed", "sliding", "token_bucket")
HEADER_MODES = ("always", "on_429", "never")
RETRY_AFTER_FORMATS = ("seconds", "http-date")
FAULTS = ("fault_500_before", "fault_500_after", "fault_drop_after", "fault_503")

# What `POST /_sandbox/config` may change while the server runs. The key, the database and the
# team are fixed for the life of a server.
RUNTIME_FIELDS = frozenset(
    {
        "limit",
        "window",
        "kind",
        "headers",
        "retry_after_format",
        "latency",
        "latency_jitter",
        "other_client_share",
        "limit_change_at",
        "limit_after",
        *FAULTS,
        "retry_after_503",
        "reject_phones",
        "seed",
    }
)
# Changing one of these starts the rate limit afresh, as a redeployed gateway would.
RATE_FIELDS = frozenset(
    {"limit", "window", "kind", "other_client_share", "limit_change_at", "limit_after"}
)


@dataclass
class SandboxConfig:
    """How the sandbox behaves. Every probability is per request that would otherwise succeed."""

    api_key: str | None = None  # None: a random throwaway key is generated
    limit: int | None = None  # requests per `window`; None: unlimited
    window: float = 1.0  # seconds
    kind: str = "fixed"  # fixed | sliding | token_bucket
    headers: str = "always"  # when X-RateLimit-* are sent: always | on_429 | never
    retry_after_format: str = "seconds"  # seconds | http-date
    latency: float = 0.0  # seconds before each API answer
    latency_jitter: float = 0.0  # up to this many seconds more, uniformly drawn
    other_client_share: float = 0.0  # share of the quota another client spends (0..1)
    limit_change_at: float | None = None  # seconds after the first request...
    limit_after: int | None = None  # ...the limit becomes this
    fault_500_before: float = 0.0  # 500, nothing created
    fault_500_after: float = 0.0  # call created, then 500
    fault_drop_after: float = 0.0  # call created, then the connection is cut mid-answer
    fault_503: float = 0.0  # 503 with Retry-After, nothing created
    retry_after_503: float = 1.0
    reject_phones: set[str] = field(default_factory=set)  # E.164 numbers answered 400
    seed: int | None = None  # seeds the fault and jitter draws
    db_path: Path | None = None  # SQLite file; None keeps everything in memory

    def __post_init__(self) -> None:
        self.reject_phones = set(self.reject_phones)
        if self.db_path is not None:
            self.db_path = Path(self.db_path)
        check(self)

    def with_key(self) -> SandboxConfig:
        """This config with a concrete API key, generating a throwaway one when none was given."""
        if self.api_key:
            return self
        return dataclasses.replace(self, api_key="sk_sandbox_" + secrets.token_urlsafe(24))

    def changed(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with run-time `changes` applied; raises ValueError on an unknown or bad value."""
        unknown = sorted(set(changes) - RUNTIME_FIELDS)
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(unknown)} at run time; "
                f"changeable: {', '.join(sorted(RUNTIME_FIELDS))}"
            )
        if "reject_phones" in changes:
            phones = changes["reject_phones"]
            if not isinstance(phones, list | set | tuple | frozenset) or not all(
                isinstance(p, str) for p in phones
            ):
                raise ValueError("reject_phones must be a list of phone numbers")
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """Every setting except the key, as JSON-ready values."""
        data = dataclasses.asdict(self)
        del data["api_key"]
        data["reject_phones"] = sorted(self.reject_phones)
        data["db_path"] = str(self.db_path) if self.db_path else None
        return data


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _optional_int(value: Any, name: str, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum} or null, got {value!r}")


def check(config: SandboxConfig) -> None:
    """Raise ValueError naming the first setting that is out of range."""
    _optional_int(config.limit, "limit", minimum=1)
    _optional_int(config.limit_after, "limit_after", minimum=1)
    _optional_int(config.seed, "seed", minimum=0)
    if _number(config.window, "window") <= 0:
        raise ValueError(f"window must be > 0 seconds, got {config.window!r}")
    for name, allowed in (
        ("kind", KINDS),
        ("headers", HEADER_MODES),
        ("retry_after_format", RETRY_AFTER_FORMATS),
    ):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    for name in ("latency", "latency_jitter", "retry_after_503"):
        if _number(getattr(config, name), name) < 0:
            raise ValueError(f"{name} must be >= 0 seconds")
    for name in (*FAULTS, "other_client_share"):
        if not 0.0 <= _number(getattr(config, name), name) <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1")
    if (
        config.limit_change_at is not None
        and _number(config.limit_change_at, "limit_change_at") < 0
    ):
        raise ValueError("limit_change_at must be >= 0 seconds")
    if (config.limit_change_at is None) != (config.limit_after is None):
        raise ValueError("limit_change_at and limit_after go together")
