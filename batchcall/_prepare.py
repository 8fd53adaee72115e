"""load -> validate -> plan, encoded for the journal, in chunks; in a child process when big.

Validation (phone parsing above all) is most of the CPU of a big run, and journalling is most
of the rest. They are independent, so on a big input a forked child validates and plans while
the parent writes the journal and sends: two cores instead of one. The child gets the already
built validator through fork (nothing to re-check or pickle), ignores Ctrl-C (the parent
decides how to stop), and sends back plain tuples, not pydantic objects, which the parent reads
as `journal.PlannedRow`s. A big text file gets two such children, sharing its checking
(`Stages`), which are the report writer's children when it has some (`striped_work`); a
workbook, costly to read twice, one. Small inputs stay in-process, where a fork would cost more
than it saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ._errors import BatchCallError, InputError
from ._journal import PlannedRow
from ._jsontext import encoder
from ._models import Checked, SourceRow
from ._plan import call_key, duplicate_error

if TYPE_CHECKING:
    from ._windows import WindowPolicy

CHUNK = 1000


# json.dumps(cells, ensure_ascii=False): what the journal has always stored.
_CELLS_JSON = encoder()

# Inputs at least this big are planned in a child process.
CHILD_MIN_BYTES = 4 * 1024 * 1024
# A text input that big is checked by PARTS children, each every PARTS-th chunk (1: one
# child plans it all).
PARTS = 2
CHILD_NICENESS = 3
PIPE_BYTES = 1 << 20


@dataclass(frozen=True)
class Plan:
    """An input's planned rows, lazily, and the calling-window policy that placed them.

    The sending pass re-checks rows with no time against that same policy just before they
    leave, so the policy is built once, by the validator, and travels with its rows.
    """

    rows: Iterator[Checked]
    policy: WindowPolicy | None
    # How `rows` are made, when two children may share the checking (see `Stages`).
    stages: Stages | None = None


@dataclass(frozen=True)
class Stages:
    """The steps behind a plan's rows, for a source cheap enough to read twice (a text file).

    Checking is most of a big text input's cost and each row's check is independent, so two
    children each read the whole source and check every other chunk of it; the parent puts
    the chunks back in order and marks duplicates (the one step that needs every row before
    it), from the call key each child worked out (`plan.call_key`)."""

    source: Callable[[], Iterable[SourceRow]]  # a new pass over the source rows at each call
    check: Callable[[SourceRow], Checked]
    allow_duplicates: bool
    # `Table.stripes`, when `source` is the table's rows as they are: a child's own chunks,
    # the others' rows never made.
    stripes: Callable[[int, int, int], Iterator[list[SourceRow]]] | None = None


def encode(checked: Checked) -> PlannedRow:
    request = checked.request
    # Positional, in PlannedRow's field order: keywords would cost 2 µs more a row.
    return PlannedRow(
        checked.row,
        _CELLS_JSON(checked.cells),
        # The validator's body as written (`EncodedRequest`), or a model's own JSON dump.
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


def _planned_chunks(planned: Iterable[Checked]) -> Iterator[Any]:
    # Plain tuples on the pipe: a NamedTuple pickles through a Python call per row, which
    # cost about 2 µs a row here and 0.4 µs in the parent (test_prepare holds the child to
    # the in-process result).
    return (list(map(tuple, chunk)) for chunk in chunks(planned))


def _striped_chunks(stages: Stages, part: int, parts: int) -> Iterator[Any]:
    """Every `parts`-th chunk of the source from chunk `part` on, checked and encoded, each
    with its rows' call keys (None when duplicates are allowed)."""
    check = stages.check
    keyed = not stages.allow_duplicates
    for batch in _stripe(stages, part, parts):
        checked = [check(r) for r in batch]
        keys = [call_key(c) for c in checked] if keyed else None
        yield [tuple(encode(c)) for c in checked], keys


def _stripe(stages: Stages, part: int, parts: int) -> Iterator[list[SourceRow]]:
    if stages.stripes is not None:
        yield from stages.stripes(part, parts, CHUNK)
        return
    source = iter(stages.source())
    index = -1
    while batch := list(islice(source, CHUNK)):
        index += 1
        if index % parts == part:
            yield batch


def run_child(messages: Iterator[Any], conn: Connection) -> None:
    """A planning child's whole life: `messages` sent on `conn`, then "done" or the error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent journals every row: the one serial stage. When the checking children and it
    # want more than the two cores there are, it should be the one that runs (this gained
    # about 0.5 s of a million-row validate's 25).
    os.nice(CHILD_NICENESS)
    try:
        with _Sender(conn) as send:
            for message in messages:
                send(("rows", message))
            send(("done", None))
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


class _Sender:
    """`conn.send` from a thread, a few messages behind: a chunk is bigger than the pipe's
    buffer, so a plain send waits until the parent has read it all, and with two children
    taking turns each would check only while the other's chunk is read. The thread waits
    instead (a pipe write releases the GIL), and checking goes on. A send's error is raised
    by the next call, or on leaving."""

    def __init__(self, conn: Connection, depth: int = 4) -> None:
        self._conn = conn
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batchcall-send", daemon=True)

    def __enter__(self) -> Callable[[Any], None]:
        self._thread.start()
        return self._send

    def __exit__(self, *exc: object) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error

    def _send(self, message: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(message)

    def _run(self) -> None:
        while (message := self._queue.get()) is not _STOP:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead pipe
            try:
                self._conn.send(message)
            except BaseException as exc:
                self._error = exc


_STOP = object()

Check = Callable[[list[PlannedRow]], list[PlannedRow]]


def striped_work(plan: Plan, size_hint: int) -> list[Iterator[Any]] | None:
    """What each of `PARTS` checking children sends, when `plan` is shared between them (a
    big text input, where forking works): for `Prepared`, or for children that someone else
    forks and hands over."""
    if size_hint < CHILD_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        return None
    if plan.stages is None or PARTS < 2:
        return None
    return [_striped_chunks(plan.stages, k, PARTS) for k in range(PARTS)]


class Prepared:
    """Chunks of planned rows, from this process or children. Iterate once; `close()`.

    `check`, when given, is applied to each chunk in this process as it arrives: the contact
    ledger's early answer (`guard.Guard.check`), which must not run in the child, since a
    database connection must never cross a fork.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        size_hint: int,
        check: Check | None = None,
        children: list[Connection] | None = None,
    ) -> None:
        self._planned = plan.rows
        self.policy = plan.policy
        self._check = check
        self._processes: list[Any] = []
        self._conns: list[Connection] = []
        self._striped = False
        if children:
            # Children already checking `striped_work(plan, ...)`, forked by someone else (the
            # report writer, whose children write the reports once they have checked).
            self._striped, self._conns = True, list(children)
        elif (work := striped_work(plan, size_hint)) is not None:
            self._striped = True
            self._fork(*work)
        elif size_hint >= CHILD_MIN_BYTES and "fork" in multiprocessing.get_all_start_methods():
            self._fork(_planned_chunks(plan.rows))

    def _fork(self, *work: Iterator[Any]) -> None:
        context = multiprocessing.get_context("fork")
        for messages in work:
            conn, child_end = context.Pipe(duplex=False)
            widen(conn)
            process = context.Process(
                target=run_child, args=(messages, child_end), name="batchcall-plan", daemon=True
            )
            process.start()
            child_end.close()
            self._conns.append(conn)
            self._processes.append(process)

    @property
    def in_child(self) -> bool:
        return bool(self._conns)

    async def __aiter__(self) -> AsyncIterator[list[PlannedRow]]:
        async for chunk in self._chunks():
            yield chunk if self._check is None else self._check(chunk)

    async def _chunks(self) -> AsyncIterator[list[PlannedRow]]:
        if not self._conns:
            for chunk in chunks(self._planned):
                yield chunk
            return
        if not self._striped:
            async for payload in _received(self._conns[0]):
                yield list(map(PlannedRow._make, payload))
            return
        duplicates = _Duplicates()
        streams = [aiter(_received(conn)) for conn in self._conns]
        # Chunk i comes from child i % PARTS: the first child with nothing more is the end.
        for index in itertools.count():
            try:
                rows, keys = await anext(streams[index % PARTS])
            except StopAsyncIteration:
                return
            planned = list(map(PlannedRow._make, rows))
            yield planned if keys is None else duplicates.mark(planned, keys)

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        for process in self._processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in self._processes:
            process.join(5)


def widen(conn: Connection) -> None:
    """A pipe that holds a few chunks (1 MiB, Linux's limit for anyone, instead of 64 KiB): a
    child then writes a chunk in one go, and the parent, told that bytes are waiting, reads
    the whole of it at once instead of waiting on the child's next write, and the next."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(conn.fileno(), size, PIPE_BYTES)


async def _received(conn: Connection) -> AsyncIterator[Any]:
    """The payloads of a child's "rows" messages, until its "done"; its errors, raised."""
    while True:
        # Poll instead of a blocking recv: the event loop keeps sending meanwhile.
        while not conn.poll():
            await asyncio.sleep(0.002)
        try:
            kind, payload = conn.recv()
        except EOFError:
            raise RuntimeError("the planning process ended without finishing") from None
        if kind == "rows":
            yield payload
        elif kind == "done":
            return
        elif kind == "user_error":
            exit_code, message = payload
            raise (InputError if exit_code == InputError.exit_code else BatchCallError)(message)
        else:
            raise RuntimeError(f"planning failed in the child process:\n{payload}")


class _Duplicates:
    """`plan.plan`'s duplicate marking, on rows already encoded, from their call keys.

    The first row of each key is kept in a dict only until `FOLD_AT` keys are there, then
    folded into two sorted numpy arrays (key, row): 12 bytes a key instead of the dict's 117
    (two int objects and a slot), which for a million rows was half the parent's memory.
    A chunk's keys are looked up in the arrays in one vectorised search."""

    FOLD_AT = 100_000

    def __init__(self) -> None:
        import numpy as np  # deferred: only big inputs are planned here

        self._np = np
        self._recent: dict[int, int] = {}
        self._keys = np.empty(0, dtype=np.uint64)
        self._rows = np.empty(0, dtype=np.int64)

    def mark(self, rows: list[PlannedRow], keys: list[int | None]) -> list[PlannedRow]:
        recent = self._recent
        old = self._folded(keys)
        for i, key in enumerate(keys):
            if key is None:
                continue
            r = rows[i]
            earlier = old[i] or recent.setdefault(key, r.row)
            if earlier != r.row:
                error = duplicate_error(earlier, r.phone_e164, r.scheduled_time_sent)
                rows[i] = r._replace(state="duplicate", error_code="duplicate", error=error)
        if len(recent) >= self.FOLD_AT:
            self._fold()
        return rows

    def _folded(self, keys: list[int | None]) -> list[int]:
        """For each key, its first row if the arrays hold it, else 0 (rows count from 1)."""
        np, held = self._np, self._keys
        if not held.size:
            return [0] * len(keys)
        gaps = None in keys  # rows never sent: most chunks have none
        wanted = np.fromiter((k or 0 for k in keys) if gaps else keys, np.uint64, len(keys))
        at = np.minimum(np.searchsorted(held, wanted), held.size - 1)
        found = held[at] == wanted
        if gaps:
            found &= np.fromiter((k is not None for k in keys), bool, len(keys))
        return np.where(found, self._rows[at], 0).tolist()  # type: ignore[no-any-return]

    def _fold(self) -> None:
        np, recent = self._np, self._recent
        keys = np.fromiter(recent.keys(), np.uint64, len(recent))
        rows = np.fromiter(recent.values(), np.int64, len(recent))
        order = np.argsort(keys)
        keys, rows = keys[order], rows[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._rows = np.insert(self._rows, at, rows)
        recent.clear()
