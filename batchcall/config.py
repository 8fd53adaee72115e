"""Run settings, and where they come from.

Precedence, lowest to highest: built-in defaults, `batchcall.toml` (the working directory's, or
`--config`), the environment (`BATCHCALL_<OPTION>`, plus `VOXWORKS_BASE_URL`), then the command
line. The API key is deliberately not a setting: it comes only from `VOXWORKS_API_KEY` or
`--api-key-file`, so it never lands in a config dump, the journal or a log.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError

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
    # calling windows
    calling_window: str | None = None
    holidays: str | None = None
    contact_timezone: str | None = None
    outside_window: Literal["defer", "reject"] = "defer"
    max_defer_days: int = Field(default=14, ge=0, le=366)
    # where and how fast to send
    base_url: str = DEFAULT_BASE_URL
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    max_rate: float | None = Field(default=None, gt=0)
    retry_ambiguous: bool = False
    timeout: float = Field(default=30.0, gt=0)
    # where results go
    reports_dir: Path = Path("reports")
    out: Path | None = None
    force: bool = False
    # re-runs
    only_failed: bool = False
    include_unknown: bool = False

    def recorded(self) -> dict[str, Any]:
        """The settings as stored in the journal (they hold no secret)."""
        return self.model_dump(mode="json")


def find_config(explicit: Path | None, cwd: Path | None = None) -> Path | None:
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
    except (OSError, tomllib.TOMLDecodeError) as exc:
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
    return out


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if environ.get("VOXWORKS_BASE_URL"):
        out["base_url"] = environ["VOXWORKS_BASE_URL"]
    for name in Settings.model_fields:
        value = environ.get(f"BATCHCALL_{name.upper()}")
        if value not in (None, "") and name != "columns":
            out[name] = value
    return out


def build_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge defaults < batchcall.toml < environment < command line. `None` means 'not given'."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    merged.update(read_config(find_config(config_path, cwd)))
    merged.update(env_settings(environ))
    for key, value in (cli or {}).items():
        if value is None:
            continue
        if key == "columns" and isinstance(value, Mapping):
            merged["columns"] = {**merged.get("columns", {}), **value}
        else:
            merged[key] = value
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"Invalid settings: {problems}") from exc
    check_base_url(settings.base_url)
    return settings


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
    environ = os.environ if environ is None else environ
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"Cannot read the API key file {api_key_file}: {exc}") from exc
        if not key:
            raise UsageError(f"The API key file {api_key_file} is empty.")
        return key
    key = environ.get("VOXWORKS_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "No API key: set VOXWORKS_API_KEY or pass --api-key-file PATH "
            "(or use --sandbox to try batchcall against the embedded sandbox)."
        )
    return key
