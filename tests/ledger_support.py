"""Fixtures for the ledger tests: a real PostgreSQL 15 server, and ledgers on both stores.

Test modules load this as a plugin (`pytest_plugins = ["ledger_support"]`), so its fixtures are
registered once and the session's PostgreSQL server is started once, however many modules use
it. The server runs from Debian's PostgreSQL 15 binaries in a fresh temporary directory, on
127.0.0.1 and a free port, with trust authentication; as root it runs as the `postgres` user,
since PostgreSQL refuses root. If PostgreSQL is missing the fixture fails and says how to
install it: no ledger test is ever skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import start_postgres

from batchcall._ledger import Ledger, open_ledger

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL 15 server started for this test session."""
    server = start_postgres()
    try:
        yield server.url
    finally:
        server.stop()


def new_team() -> str:
    """A team of its own for each test: teams never mix, so tests sharing a store cannot
    see each other."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a ledger lives, once for SQLite (a file) and once for PostgreSQL (a URL)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "ledger.sqlite")


@pytest.fixture
def fresh_location(location: str) -> str:
    """Like `location`, but a store nothing has used yet (on PostgreSQL a new database), so
    that the first processes to open it race to create its tables too."""
    if not location.startswith("postgresql"):
        return location  # a new file in the test's own directory
    import psycopg

    name = f"fresh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(location, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return location.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def team() -> str:
    return new_team()


@pytest.fixture
def ledger(location: str, team: str) -> Iterator[Ledger]:
    with open_ledger(location, team=team) as opened:
        yield opened
