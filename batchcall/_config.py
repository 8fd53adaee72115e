"""Run settings, and where they come from.

`resolve` is the one way a `Settings` is built, for the command line and the Python API alike:
it merges the layers, then validates the result as a whole by constructing `Settings(...)`, so
no value reaches a run unchecked and every bad one is reported with where it came from.

Precedence for a new run, lowest to highest: built-in defaults, `batchcall.toml` (the working
directory's, or `--config`), the environment (`BATCHCALL_<OPTION>`, plus `VOXWORKS_BASE_URL`),
then the command line or the API's arguments. A continued run (resume, retry) starts instead
from the settings stored in its journal, and only `CHANGEABLE` ones may be overridden.

The API key is deliberately not a setting: it comes only from `VOXWORKS_API_KEY` or
`--api-key-file`, so it never lands in a config dump, the journal or a log.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import UsageError

DEFAULT_BASE_URL = "https://api.voxworks.ai"
CONFIG_FILE = "batchcall.toml"


class Settings(BaseModel):
    """Every option of a run. Field names are the CLI's long options with `_` for `-`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to send
    from_number: str | None = None
    script_id: str | None = None
    # how to read the input
    sheet: str | None = None
    encoding: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # field -> input column name
    region: str | None = None
    timezone: str | None = None
    date_format: str | None = None
    allow_duplicates: bool = False
    # A phone cell holding several numbers: reject the row, or call the first valid one.
    multi_phone: Literal["reject", "first"] = "reject"
    # calling windows
    calling_window: str | None = None
    holidays: str | None = None
    contact_timezone: str | None = None
    outside_window: Literal["defer", "reject"] = "defer"
    max_defer_days: int = Field(default=14, ge=0, le=366)
    # No call is placed this close to the end of its window (`--window-margin`).
    window_margin: timedelta = timedelta(minutes=30)
    # where and how fast to send
    base_url: str = DEFAULT_BASE_URL
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    max_rate: float | None = Field(default=None, gt=0)
    retry_ambiguous: bool = False
    timeout: float = Field(default=30.0, gt=0)  # each request's whole budget, in seconds
    # Stop starting rows after this many requests in a row got no clear answer (timeouts,
    # 5xx, dropped connections); 0 never stops.
    breaker: int = Field(default=10, ge=0)
    # where results go
    reports_dir: Path = Path("reports")
    out: Path | None = None
    force: bool = False
    # re-runs
    only_failed: bool = False
    include_unknown: bool = False
    # the contact ledger (`batchcall._ledger`): who the team has called, across runs
    ledger: str | None = None  # a SQLite file, sqlite:///PATH or postgresql://...; None: default
    team: str | None = None  # None: the fingerprint of the API key
    allow_repeat: bool = False
    repeat_window: timedelta = timedelta(hours=24)
    max_calls: list[str] = Field(default_factory=list)  # caps as written: "3/24h"
    suppress: list[Path] = Field(default_factory=list)

    @field_validator("ledger", "team", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value.strip()

    @field_validator("team", mode="after")
    @classmethod
    def _team_name(cls, value: str | None) -> str | None:
        from ._ledger import check_team  # deferred: the ledger package imports this module

        return None if value is None else _usage_to_value(check_team, value)

    @field_validator("window_margin", mode="before")
    @classmethod
    def _margin(cls, value: Any) -> Any:
        # "0" turns the margin off; anything else is written as a cap's period is ("30m").
        if isinstance(value, str) and value.strip() in ("0", "0m", "0h"):
            return timedelta(0)
        if isinstance(value, str) and not value.strip().upper().startswith("P"):
            from ._ledger import parse_period

            return _usage_to_value(parse_period, value)
        return value

    @field_validator("window_margin", mode="after")
    @classmethod
    def _margin_bound(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value < timedelta(hours=12):
            raise ValueError("--window-margin must be at least 0 and under 12h, e.g. 30m")
        return value

    @field_validator("repeat_window", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        # "24h" as a cap's period is written; pydantic reads what the journal stores (PT24H).
        if isinstance(value, str) and not value.strip().upper().startswith("P"):
            from ._ledger import parse_period

            return _usage_to_value(parse_period, value)
        return value

    @field_validator("max_calls", "suppress", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @field_validator("max_calls", mode="after")
    @classmethod
    def _caps(cls, value: list[str]) -> list[str]:
        from ._ledger import parse_cap

        for cap in value:
            _usage_to_value(parse_cap, cap)
        return value

    @model_validator(mode="after")
    def _window_options_need_a_window(self) -> Settings:
        # Silently ignoring them would let an operator believe holidays are being honoured.
        given = [name for name in ("holidays", "contact_timezone") if getattr(self, name)]
        if given and not self.calling_window:
            options = " and ".join(f"--{name.replace('_', '-')}" for name in given)
            raise ValueError(f"{options} only apply with --calling-window")
        return self

    def recorded(self) -> dict[str, Any]:
        """The settings as stored in the journal: they hold no secret, so a ledger URL's
        password is masked (resume asks for the URL again, or finds it in ~/.pgpass)."""
        data = self.model_dump(mode="json")
        if self.ledger is not None and "://" in self.ledger:
            from ._ledger._open import redact

            data["ledger"] = redact(self.ledger)
        return data


def _usage_to_value(check: Callable[[str], Any], value: str) -> Any:
    """`check(value)`, its UsageError turned into the ValueError pydantic reports."""
    try:
        return check(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


class Output(BaseModel):
    """Options that shape what the command line shows, not what the run does.

    They follow the same precedence as `Settings` but are not recorded in the journal: they
    change nothing about the calls. `--sandbox` is deliberately not here: a stray
    `BATCHCALL_SANDBOX=1` in a nightly job would "succeed" against a throwaway server.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    as_json: bool = Field(default=False, alias="json")
    quiet: bool = False
    verbose: bool = False
    api_key_file: Path | None = None
    report_unmasked: bool = False  # whole phone numbers in report.html, kept in the journal


OUTPUT_KEYS = frozenset({"json", "quiet", "verbose", "api_key_file", "report_unmasked"})
SETTING_KEYS = frozenset(Settings.model_fields)
# What resume and retry may change: where the API is, how fast to send, and when to give up on
# it. Anything else would send the rest of a run differently from its first part. The ledger's
# location too: a URL's password is never stored, and a ledger may move.
CHANGEABLE = frozenset({"base_url", "breaker", "concurrency", "ledger", "max_rate"})
# Options given in batchcall.toml that name files are read relative to that file, so a job can
# run `batchcall --config /etc/batchcall/nightly.toml` from any working directory.
PATH_KEYS = frozenset({"api_key_file", "reports_dir", "out", "suppress", "ledger"})
# Options given more than once on the command line, and how the environment separates them:
# BATCHCALL_MAX_CALLS=3/24h,7/7d and BATCHCALL_SUPPRESS=dnc.csv:optouts.txt (as PATH does).
LIST_KEYS = {"max_calls": ",", "suppress": os.pathsep}


def find_config(
    explicit: Path | None, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """`--config`, else `BATCHCALL_CONFIG`, else ./batchcall.toml if it exists."""
    environ = os.environ if environ is None else environ
    if explicit is None and environ.get("BATCHCALL_CONFIG"):
        explicit = Path(environ["BATCHCALL_CONFIG"])
    if explicit is not None:
        if not explicit.is_file():
            raise UsageError(f"Config file {explicit} does not exist.")
        return explicit
    candidate = (cwd or Path.cwd()) / CONFIG_FILE
    return candidate if candidate.is_file() else None


def read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read config {path}: {exc}") from exc
    # Users write options as on the command line; accept both `max-rate` and `max_rate`.
    table = data.get("batchcall", data)
    out: dict[str, Any] = {}
    for key, value in table.items():
        out[key.replace("-", "_")] = value
    if "api_key" in out:
        raise UsageError(
            f"{path} sets api_key. The key is never read from a file of settings: set "
            "VOXWORKS_API_KEY or pass --api-key-file."
        )
    unknown = sorted(set(out) - SETTING_KEYS - OUTPUT_KEYS)
    if unknown:
        known = ", ".join(sorted((SETTING_KEYS | OUTPUT_KEYS) - {"columns"}))
        close = _closest(unknown[0], SETTING_KEYS | OUTPUT_KEYS) if len(unknown) == 1 else None
        hint = f"; did you mean {close!r}?" if close else "."
        raise UsageError(
            f"{path}: unknown setting {', '.join(map(repr, unknown))}{hint} Known settings: "
            f"{known}, and a [columns] table."
        )
    for key in PATH_KEYS & set(out):
        out[key] = _relative_to(path.parent, out[key], keep=key == "ledger")
    return out


def _relative_to(directory: Path, value: Any, *, keep: bool) -> Any:
    """A path written in a config file, read relative to that file; URLs stay as they are.
    `keep` keeps the value a string (the ledger option holds a path or a URL)."""
    if isinstance(value, list):
        return [_relative_to(directory, v, keep=keep) for v in value]
    if not isinstance(value, str) or "://" in value:
        return value
    found = directory / Path(value).expanduser()
    return str(found) if keep else found


def _env_columns(value: str) -> dict[str, str]:
    mapping = {}
    for pair in value.split(","):
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise UsageError(
                f"BATCHCALL_COLUMNS={value!r}: write FIELD=COLUMN pairs separated by commas, "
                "e.g. phone_number=Mobile,first_name=Given."
            )
        mapping[field.strip()] = column.strip()
    return mapping


def _env_layer(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if environ.get("VOXWORKS_BASE_URL"):
        out["base_url"] = (environ["VOXWORKS_BASE_URL"], "VOXWORKS_BASE_URL")
    for name in sorted(SETTING_KEYS | OUTPUT_KEYS):
        variable = f"BATCHCALL_{name.upper()}"
        value = environ.get(variable)
        if value in (None, ""):
            continue
        if name == "columns":
            out[name] = (_env_columns(value), variable)
        elif name in LIST_KEYS:
            out[name] = ([v.strip() for v in value.split(LIST_KEYS[name]) if v.strip()], variable)
        else:
            out[name] = (value, variable)
    return out


class Options(NamedTuple):
    """What `resolve` returns: the run's settings and the command line's output options."""

    settings: Settings
    output: Output


def flag(key: str) -> str:
    """An option as the command line spells it, for messages: `--max-rate`."""
    return f"--{key.replace('_', '-')}"


def argument(key: str) -> str:
    """An option as the Python API spells it, for messages."""
    return f"the {key} argument"


def resolve(
    given: Mapping[str, Any] | None = None,
    *,
    base: Settings | Mapping[str, Any] | None = None,
    allowed: Collection[str] = SETTING_KEYS | OUTPUT_KEYS,
    named: Callable[[str], str] = flag,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Options:
    """The one way settings are built: every layer merged, then validated as a whole.

    `given` holds explicit values (None means 'not given'); `named` says how messages name
    them. Without `base` the layers are defaults < batchcall.toml < environment < `given`: a
    new run. With `base` (a run's stored settings, or a ready `Settings`) they are `base` <
    `given`, and neither the file nor the environment has a say: the run keeps what it had.

    A name in `given` outside `allowed` raises UsageError, suggesting the closest allowed
    name; so does a bad value, naming the option, the value and where it came from.
    """
    explicit = {k: v for k, v in (given or {}).items() if v is not None}
    _check_names(explicit, allowed)
    if base is None:
        environ = os.environ if environ is None else environ
        config = find_config(config_path, cwd, environ)
        layers = [_labelled(read_config(config), str(config)), _env_layer(environ)]
    else:
        stored = base.model_dump() if isinstance(base, Settings) else dict(base)
        layers = [_labelled(stored, "the run's settings")]
    layers.append({k: (v, named(k)) for k, v in explicit.items()})
    merged, origin = _merge(layers)
    try:
        settings = Settings(**{k: v for k, v in merged.items() if k not in OUTPUT_KEYS})
        output = Output(**{k: v for k, v in merged.items() if k in OUTPUT_KEYS})
    except ValidationError as exc:
        raise UsageError(_explain(exc, merged, origin)) from exc
    check_base_url(settings.base_url)
    return Options(settings, output)


def _merge(
    layers: Iterable[Mapping[str, tuple[Any, str]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each option's value from the highest layer that sets it, and where that value came from."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for layer in layers:
        for key, (value, where) in layer.items():
            if key == "columns" and isinstance(value, Mapping):
                # Mappings add up: the environment can remap one field and keep the file's others.
                value = {**merged.get("columns", {}), **value}
            merged[key] = value
            origin[key] = where
    return merged, origin


def _labelled(values: Mapping[str, Any], where: str) -> dict[str, tuple[Any, str]]:
    return {key: (value, where) for key, value in values.items()}


def _check_names(given: Mapping[str, Any], allowed: Collection[str]) -> None:
    for key in given:
        if key in allowed:
            continue
        if key in SETTING_KEYS:
            # Only a continued run (resume, retry) allows fewer than every setting.
            raise UsageError(
                f"{key!r} cannot be changed: a run keeps the settings it was started with; "
                f"only {_listing(allowed)} can."
            )
        close = _closest(key, allowed)
        hint = f"; did you mean {close!r}?" if close else f". The options are {_listing(allowed)}."
        raise UsageError(f"Unknown option {key!r}{hint}")


def _closest(key: str, choices: Collection[str]) -> str | None:
    import difflib  # only for a mistyped key

    close = difflib.get_close_matches(key, sorted(choices), n=1)
    return close[0] if close else None


def _listing(names: Collection[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:-1]) + f" and {ordered[-1]}" if len(ordered) > 1 else ordered[0]


def _explain(exc: ValidationError, merged: Mapping[str, Any], origin: Mapping[str, str]) -> str:
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a rule across options, whose message names them
            problems.append(message)
            continue
        key = str(err["loc"][0])
        key = "json" if key == "as_json" else key
        where = origin.get(key, "the defaults")
        value = merged.get(key)
        shown = f" = {value!r}" if value is not None and key in merged else ""
        detail = f" ({'.'.join(str(p) for p in err['loc'][1:])})" if len(err["loc"]) > 1 else ""
        problems.append(f"{key}{shown} (from {where}){detail}: {message}")
    return "Invalid settings: " + "; ".join(problems)


def check_base_url(url: str) -> None:
    """Refuse plain http:// except to loopback, before any connection is made."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"Base URL {url!r} is not an http(s) URL.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"Refusing plain http:// to {parts.hostname}: the API key would travel unencrypted. "
            "Use https://, or http:// only to a loopback address such as 127.0.0.1."
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_key(api_key_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The key, from `--api-key-file` or `VOXWORKS_API_KEY`. Messages never quote it."""
    environ = os.environ if environ is None else environ
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read the API key file {api_key_file}: {exc}") from exc
        if not key:
            raise UsageError(f"The API key file {api_key_file} is empty.")
        return _checked_key(key, f"the API key file {api_key_file}")
    key = environ.get("VOXWORKS_API_KEY", "").strip()
    if not key:
        hint = (
            " (BATCHCALL_API_KEY is not read: the key is not a setting)"
            if environ.get("BATCHCALL_API_KEY")
            else ""
        )
        raise UsageError(
            f"No API key{hint}: set VOXWORKS_API_KEY or pass --api-key-file PATH "
            "(or use --sandbox to try batchcall against the embedded sandbox)."
        )
    return _checked_key(key, "VOXWORKS_API_KEY")


def _checked_key(key: str, where: str) -> str:
    # A key with a space, a control character or non-ASCII cannot go in a header; httpx would
    # fail mid-run with an error that quotes the header, key and all.
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise UsageError(
            f"The key in {where} holds spaces, line breaks or non-ASCII characters; "
            "an API key is one line of plain ASCII."
        )
    return key
