"""The contact ledger: a team's memory of every call placed through batchcall, across runs,
processes and machines, and the policies that keep a person from being called too often.

The journal is one run's; the ledger is the team's. It records each call placed: phone (E.164),
script_id, the time it rings (its scheduled_time, else the send time), the run id and row, the
call_id, and the outcome: `reserved` while in flight, then `scheduled`, `unknown` or `failed`.
`reserved` and `unknown` count as placed (the call may exist); `failed` does not (the server
provably did not create it).

Policies, each checked twice: at plan time (`Ledger.check`, read-only and batched) for an early
answer, and just before a request leaves (`Ledger.reserve`, the check and the reservation in one
transaction), which is the answer that counts:

- repeat guard: same phone, script and time as a placed call → `already_scheduled`; a call that
  rings now repeats one of the same phone and script within `repeat_window` of now;
- frequency caps (`parse_cap("3/24h")`): no phone rings more than N times in any rolling
  period, over every run and script → deferred to the first instant the caps and the calling
  window allow, or `frequency_capped`;
- suppression: the team's own list, kept in the ledger and read at every reservation, and the
  run's `--suppress FILE` lists (`SuppressionList.load`), which fail closed → `suppressed`.

Teams. Every row carries a `team` id, and every statement names it, so two teams sharing one
store never see each other's calls or lists. The default team id is `team_fingerprint(base_url,
api_key)`: `key:` and 16 hex digits of sha256 over the API host and the key. It is the same for
every run with that key, differs between keys, and cannot be turned back into the key, so no
secret is ever stored. A team that runs with several keys, or wants readable ids, names itself
(`--team sales`): names cannot contain `:`, so they never collide with a fingerprint.

Stores. An embedded SQLite file by default (`open_ledger(None, ...)`: the user's state
directory, 0700, the file 0600, no symlink followed), or PostgreSQL via psycopg 3 when jobs run
on several machines (`open_ledger("postgresql://...", ...)`). Both are created on first use by
ordered, named migrations, and behave the same; `_store` says how each makes a reservation
atomic. A sandbox run opens a ledger of its own, so a demo never blocks a real call.
"""

from __future__ import annotations

from .._errors import LedgerError
from ._ledger import Ledger
from ._model import (
    OUTCOMES,
    PLACED,
    Call,
    Cap,
    Outcome,
    Placed,
    Policy,
    Pruned,
    Suppression,
    Verdict,
    Window,
    parse_cap,
    parse_period,
)
from ._open import check_team, default_path, open_ledger, team_fingerprint
from ._suppress import SuppressionList, parse_expiry

__all__ = [
    "OUTCOMES",
    "PLACED",
    "Call",
    "Cap",
    "Ledger",
    "LedgerError",
    "Outcome",
    "Placed",
    "Policy",
    "Pruned",
    "Suppression",
    "SuppressionList",
    "Verdict",
    "Window",
    "check_team",
    "default_path",
    "open_ledger",
    "parse_cap",
    "parse_expiry",
    "parse_period",
    "team_fingerprint",
]
