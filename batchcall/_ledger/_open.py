"""Where a ledger lives, and opening it safely: `open_ledger`, teams, private files.

The default ledger is `ledger.sqlite` in `platformdirs.user_state_dir("batchcall")` (on Linux
`~/.local/state/batchcall`), in a directory made 0700, as a file made 0600: it holds phone
numbers. A symbolic link in place of the file (or of the default directory) is refused, never
followed, so another local user cannot point the ledger at a file of their choosing.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import platformdirs

from .._errors import UsageError
from ._ledger import Ledger
from ._store import PostgresStore, SqliteStore, Store

DEFAULT_NAME = "ledger.sqlite"
SANDBOX_NAME = "ledger-sandbox.sqlite"
_TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FINGERPRINT = re.compile(r"key:[0-9a-f]{16}")
_PG_SCHEMES = frozenset({"postgresql", "postgres"})


def team_fingerprint(base_url: str, api_key: str) -> str:
    """The default team id: `key:` and 16 hex digits of sha256 over the API host and the key.

    Stable for a key, different for every key and API host, and not reversible, so the ledger
    tells teams apart without ever holding a secret."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
    digest = hashlib.sha256(f"{host}\n{api_key}".encode()).hexdigest()
    return f"key:{digest[:16]}"


def check_team(team: str) -> str:
    """A team id: a fingerprint from `team_fingerprint`, or a name the team chose (letters,
    digits, `.`, `_`, `-`; no `:`, so a name never collides with a fingerprint)."""
    if _FINGERPRINT.fullmatch(team) or _TEAM_NAME.fullmatch(team):
        return team
    raise UsageError(
        f"Team {team!r} is not a team name: use 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    )


def default_path(*, sandbox: bool = False) -> Path:
    return Path(platformdirs.user_state_dir("batchcall")) / (
        SANDBOX_NAME if sandbox else DEFAULT_NAME
    )


def open_ledger(location: str | Path | None, *, team: str, sandbox: bool = False) -> Ledger:
    """Open (creating on first use) the ledger at `location` for `team`.

    `location`: None for the default file; a path to a SQLite file; `sqlite:///PATH`; or a
    `postgresql://` URL. A sandbox run gets a ledger of its own, so a demo never blocks a real
    call: the default `ledger-sandbox.sqlite`, `NAME-sandbox.sqlite` beside an explicit file, or
    on PostgreSQL the team `sandbox:TEAM`."""
    team = check_team(team)
    store: Store
    if isinstance(location, str) and "://" in location:
        parts = urlsplit(location)
        if parts.scheme in _PG_SCHEMES:
            store = PostgresStore(location, redact(location))
            return Ledger(store, f"sandbox:{team}" if sandbox else team)
        if parts.scheme != "sqlite":
            raise UsageError(
                f"Ledger {redact(location)!r}: unknown scheme {parts.scheme!r}; give a file path, "
                "sqlite:///PATH or postgresql://USER@HOST/DB."
            )
        location = Path(parts.netloc + parts.path)
    if location is None:
        path = default_path(sandbox=sandbox)
        _private_dir(path.parent)
    else:
        path = Path(location).expanduser()
        if sandbox:
            path = path.with_name(f"{path.stem}-sandbox{path.suffix or '.sqlite'}")
        if not path.parent.exists():
            _private_dir(path.parent)
    _private_file(path)
    return Ledger(SqliteStore(f"file:{quote(str(path.absolute()))}?mode=rw", str(path)), team)


def _private_dir(directory: Path) -> None:
    """Make (or tighten) a directory only its owner can enter; refuse a symbolic link."""
    try:
        directory.mkdir(parents=True, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise UsageError(f"Cannot make the ledger's directory {directory}: {exc}.") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"The ledger's directory {directory} is a symbolic link or not a directory; "
            "batchcall does not follow links to a ledger. Remove it, or pass --ledger PATH."
        )
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)


def _private_file(path: Path) -> None:
    """Create `path` 0600 if it is new; refuse a symbolic link or anything but a file, for the
    database and the WAL files SQLite keeps beside it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"Cannot create the ledger {path}: {exc.strerror or exc}.") from exc
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = os.lstat(each)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(
                f"The ledger {each} is a symbolic link or not a regular file; batchcall does "
                "not follow links to a ledger. Remove it, or pass another --ledger PATH."
            )


def redact(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
