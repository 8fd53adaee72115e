"""load -> validate -> plan, encoded for the journal, in chunks; in a child process when big.

Validation (phone parsing above all) is most of the CPU of a big run, and journalling is most
of the rest. They are independent, so on a big input a forked child validates and plans while
the parent writes the journal and sends: two cores instead of one. The child gets the already
built validator through fork (nothing to re-check or pickle), ignores Ctrl-C (the parent
decides how to stop), and sends back plain tuples, not pydantic objects, which the parent reads
as `journal.PlannedRow`s. Small inputs stay in-process, where a fork would cost more than it
saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ._errors import BatchCallError, InputError
from ._journal import PlannedRow
from ._models import Checked

if TYPE_CHECKING:
    from ._windows import WindowPolicy

CHUNK = 1000
# Inputs at least this big are planned in a child process.
CHILD_MIN_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """An input's planned rows, lazily, and the calling-window policy that placed them.

    The sending pass re-checks rows with no time against that same policy just before they
    leave, so the policy is built once, by the validator, and travels with its rows.
    """

    rows: Iterator[Checked]
    policy: WindowPolicy | None


def encode(checked: Checked) -> PlannedRow:
    request = checked.request
    # Positional, in PlannedRow's field order: keywords would cost 2 µs more a row.
    return PlannedRow(
        checked.row,
        json.dumps(checked.cells, ensure_ascii=False),
        # pydantic's own (Rust) JSON dump: a quarter of the cost of json.dumps(model_dump()).
        None if request is None else request.model_dump_json(exclude_none=True),
        checked.phone_e164,
        checked.outcome,
        checked.error_code,
        checked.error,
        None if request is None else request.scheduled_time,
        int(checked.time_moved),
        checked.window_rule,
    )


def chunks(planned: Iterable[Checked], size: int = CHUNK) -> Iterator[list[PlannedRow]]:
    iterator = iter(planned)
    while chunk := [encode(c) for c in islice(iterator, size)]:
        yield chunk


def _child(planned: Iterable[Checked], conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for chunk in chunks(planned):
            # Plain tuples on the pipe: a NamedTuple pickles through a Python call per row,
            # which cost about 2 µs a row here and 0.4 µs in the parent (test_prepare holds
            # the child to the in-process result).
            conn.send(("rows", list(map(tuple, chunk))))
        conn.send(("done", None))
    except BrokenPipeError:
        pass  # the parent is gone (killed, or stopped reading): nothing left to do
    except BatchCallError as exc:
        # A problem with the input, meant for the user: the parent raises it as such.
        with contextlib.suppress(BrokenPipeError):
            conn.send(("user_error", (exc.exit_code, str(exc))))
    except BaseException:
        with contextlib.suppress(BrokenPipeError):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


Check = Callable[[list[PlannedRow]], list[PlannedRow]]


class Prepared:
    """Chunks of planned rows, from this process or a child. Iterate once; `close()`.

    `check`, when given, is applied to each chunk in this process as it arrives: the contact
    ledger's early answer (`guard.Guard.check`), which must not run in the child, since a
    database connection must never cross a fork.
    """

    def __init__(self, plan: Plan, *, size_hint: int, check: Check | None = None) -> None:
        self._planned = plan.rows
        self.policy = plan.policy
        self._check = check
        self._process: Any = None
        self._conn: Connection | None = None
        if size_hint >= CHILD_MIN_BYTES and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            self._conn, child_end = context.Pipe(duplex=False)
            self._process = context.Process(
                target=_child, args=(plan.rows, child_end), name="batchcall-plan", daemon=True
            )
            self._process.start()
            child_end.close()

    @property
    def in_child(self) -> bool:
        return self._process is not None

    async def __aiter__(self) -> AsyncIterator[list[PlannedRow]]:
        async for chunk in self._chunks():
            yield chunk if self._check is None else self._check(chunk)

    async def _chunks(self) -> AsyncIterator[list[PlannedRow]]:
        if self._conn is None:
            for chunk in chunks(self._planned):
                yield chunk
            return
        while True:
            # Poll instead of a blocking recv: the event loop keeps sending meanwhile.
            while not self._conn.poll():
                await asyncio.sleep(0.002)
            try:
                kind, payload = self._conn.recv()
            except EOFError:
                raise RuntimeError("the planning process ended without finishing") from None
            if kind == "rows":
                yield list(map(PlannedRow._make, payload))
            elif kind == "done":
                return
            elif kind == "user_error":
                exit_code, message = payload
                raise (InputError if exit_code == InputError.exit_code else BatchCallError)(message)
            else:
                raise RuntimeError(f"planning failed in the child process:\n{payload}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if self._process.is_alive():
                os.kill(self._process.pid, signal.SIGTERM)
            self._process.join(5)
