"""The sandbox's command-line options, as one table.

It drives both `batchcall sandbox`'s options (`_cli`) and `config_args`, which `_server` uses to
start the same server in a child process, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import click

from ._config import HEADER_MODES, KINDS, RETRY_AFTER_FORMATS, SandboxConfig

# (SandboxConfig field, click type, help). The option is the field with `-` for `_`; this one
# table drives both the command's options and `config_args`, so the two cannot drift apart.
OPTIONS: tuple[tuple[str, Any, str], ...] = (
    ("limit", click.IntRange(min=1), "Requests allowed per window (default: unlimited)."),
    ("window", click.FloatRange(min=0, min_open=True), "Rate-limit window in seconds."),
    ("kind", click.Choice(KINDS), "Rate-limit algorithm."),
    ("headers", click.Choice(HEADER_MODES), "When X-RateLimit-Limit/-Remaining are sent."),
    ("retry_after_format", click.Choice(RETRY_AFTER_FORMATS), "Retry-After on 429s."),
    ("latency", click.FloatRange(min=0), "Seconds before each API answer."),
    ("latency_jitter", click.FloatRange(min=0), "Up to this many extra seconds, at random."),
    ("other_client_share", click.FloatRange(0, 1), "Share of the quota another client uses."),
    ("limit_change_at", click.FloatRange(min=0), "Seconds after the first request when..."),
    ("limit_after", click.IntRange(min=1), "...the limit becomes this."),
    ("fault_500_before", click.FloatRange(0, 1), "Chance of a 500 that creates nothing."),
    ("fault_500_after", click.FloatRange(0, 1), "Chance of a 500 after the call is created."),
    ("fault_drop_after", click.FloatRange(0, 1), "Chance the connection is cut after creating."),
    ("fault_503", click.FloatRange(0, 1), "Chance of a 503 with Retry-After, nothing created."),
    ("retry_after_503", click.FloatRange(min=0), "Retry-After seconds on injected 503s."),
    ("seed", click.IntRange(min=0), "Seed for fault and jitter draws, for repeatable runs."),
)


def config_args(config: SandboxConfig) -> list[str]:
    """Command-line options reproducing `config`, except the key (it goes by environment)."""
    defaults = SandboxConfig(api_key="x")
    args: list[str] = []
    for name, _type, _help in OPTIONS:
        value = getattr(config, name)
        if value != getattr(defaults, name):
            args += [f"--{name.replace('_', '-')}", str(value)]
    for phone in sorted(config.reject_phones):
        args += ["--reject-phone", phone]
    if config.db_path is not None:
        args += ["--db", str(config.db_path)]
    return args
