"""Shared helpers for end-to-end tests: contact files, a recording transport, and the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from batchcall._csvsafe import restore

# The console script installed beside this interpreter: what a user's shell would run.
BATCHCALL = str(Path(sys.executable).with_name("batchcall"))
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def au_mobiles(count: int, *, start: int = 0) -> list[str]:
    """`count` distinct valid Australian mobiles in E.164."""
    out: list[str] = []
    n = start
    while len(out) < count:
        candidate = f"+6141{n:07d}"
        n += 1
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            out.append(candidate)
    return out


def write_contacts(path: Path, phones: list[str], *, national: bool = True) -> Path:
    """A contacts CSV as an operator would export it: national numbers, names, an object."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["First Name", "Last Name", "Mobile", "policy.number"])
        for i, phone in enumerate(phones, 1):
            shown = "0" + phone[3:] if national else phone
            writer.writerow([f"Name{i}", f"Surname{i}", shown, f"POL-{i:05d}"])
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    """A results.csv as values: the formula guard's apostrophes taken off again."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [{k: restore(v) for k, v in row.items()} for row in csv.DictReader(f)]


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, keeping a copy of every request body that left."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.headers.append(request.headers)
        return await super().handle_async_request(request)


def cli(
    *args: str,
    key: str | None,
    cwd: Path,
    timeout: float = 120,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `batchcall` entry point in a child process, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXWORKS_", "BATCHCALL_"))}
    if key is not None:
        env["VOXWORKS_API_KEY"] = key
    env.update(extra_env or {})
    return subprocess.run(
        [BATCHCALL, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def popen(*args: str, key: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXWORKS_", "BATCHCALL_"))}
    env["VOXWORKS_API_KEY"] = key
    return subprocess.Popen(
        [BATCHCALL, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
