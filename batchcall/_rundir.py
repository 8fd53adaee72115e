"""Run directories: private, never through a symlink, and used by one process at a time.

A run directory holds personal data (phones, names) and the journal that decides who may be
called again, so:
- batchcall creates it 0700, and chmods only what it created: an existing `--out` or reports
  directory keeps its mode. An existing `--out` that other users can read or write, that
  belongs to another user, or that is a symlink is refused, with the reason.
- Files inside it are opened with `O_NOFOLLOW`, and new ones with `O_EXCL` too, so a planted
  symlink (`run.log -> ~/.bashrc`) is refused instead of written through.
- One process at a time: `RunLock` holds an `flock` on `.lock` for the whole run. The kernel
  drops it when the process ends, however it ends, so a `kill -9` never leaves it stuck; the
  file names the holder (pid, host, command) for the message a second process prints.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from types import TracebackType

from ._errors import UsageError

PRIVATE = 0o700
LOCK_NAME = ".lock"


def _refuse(path: Path, why: str) -> UsageError:
    return UsageError(
        f"Cannot create the run directory {path}: {why}. Nothing was sent; choose another "
        "--out or --reports-dir."
    )


def _check_existing(path: Path, *, strict: bool) -> None:
    """An existing directory we did not create: refuse it unless it is ours alone."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, "it is a symbolic link, and batchcall never writes through one")
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "a file is in the way")
    if info.st_uid != os.geteuid():
        raise _refuse(path, f"it belongs to another user (uid {info.st_uid})")
    if strict and stat.S_IMODE(info.st_mode) & 0o077:
        raise _refuse(
            path,
            f"other users can open it (mode {stat.S_IMODE(info.st_mode):04o}), and it would "
            f"hold personal data; run `chmod 700 {path}` first",
        )


def private_dir(path: Path, *, strict: bool = True) -> Path:
    """`path` as a directory only this user can open: created 0700, or checked if it exists.

    `strict=False` is for the reports directory, which holds run directories but no data of
    its own: another mode is the user's choice there, and is left alone.
    """
    try:
        os.mkdir(path, PRIVATE)
    except FileExistsError:
        _check_existing(path, strict=strict)
        return path
    except FileNotFoundError:
        private_dir(path.parent, strict=False)
        return private_dir(path, strict=strict)
    except OSError as exc:
        raise _refuse(path, (exc.strerror or str(exc)).lower()) from exc
    # mkdir's mode is masked by the umask; this directory is ours, so set it exactly.
    os.chmod(path, PRIVATE, follow_symlinks=False)
    return path


def open_private(path: Path, flags: int, *, create: bool) -> int:
    """A file descriptor for a file inside a run directory, never through a symlink.

    `create=True` makes a new file (0600) and refuses one that exists already.
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    if create:
        flags |= os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(
                f"{path} is a symbolic link; batchcall never writes through one. Remove it."
            ) from exc
        raise


class RunLock:
    """An exclusive, crash-proof claim on a run directory for the life of one process."""

    def __init__(self, run_dir: Path, command: str) -> None:
        self._path = run_dir / LOCK_NAME
        self._command = command
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise UsageError(
                f"{self._path.parent} is in use by {holder}. Wait for it to finish (or stop "
                "it), then run this command again."
            ) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": self._command}
        # Written over the last holder's, then cut to length: the file is never empty, so a
        # process refused the lock meanwhile reads a holder (or, for an instant, a torn one).
        data = json.dumps({**me, "since": time.time()}).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            return open_private(self._path, os.O_RDWR, create=True)
        except FileExistsError:
            return open_private(self._path, os.O_RDWR, create=False)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


HOLDER_WAIT = 0.5  # seconds to wait for a lock's new holder to write who it is


def _alive(holder: dict[str, object]) -> bool:
    """Whether a record names a holder that may still run (one here whose process is gone was
    the last holder's, killed: the new one has not written itself yet)."""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(fd: int) -> str:
    # The holder writes who it is just after it takes the lock: a reader that came in between
    # (two commands started at once) sees the last holder's record or a torn one; wait for it.
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            data = {}
        if _alive(data) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not data.get("pid"):
        return "another batchcall process"
    where = f" on {data['host']}" if data.get("host") != socket.gethostname() else ""
    return f"process {data['pid']}{where} (batchcall {data.get('command', '?')})"
