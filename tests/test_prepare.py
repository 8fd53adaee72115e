"""Big inputs are planned in a child process, with the same results as in-process."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
from pathlib import Path

import pytest
from e2e_support import FROM, SCRIPT, au_mobiles, write_contacts
from hypothesis import given, settings
from hypothesis import strategies as st

import batchcall
from batchcall import _prepare as prepare
from batchcall._journal import PlannedRow
from batchcall._models import Checked, Contact, CreatePhoneCallRequest
from batchcall.sandbox import SandboxConfig, start_sandbox


def _results(summary) -> str:
    return Path(summary.results_csv).read_text(encoding="utf-8-sig")


def test_a_child_process_plans_exactly_what_this_process_would(tmp_path, monkeypatch):
    """The same file, validated in-process and by a forked child, gives byte-identical
    results: same rows, order, outcomes, codes and E.164 numbers."""
    phones = au_mobiles(2500)
    source = write_contacts(tmp_path / "c.csv", phones + phones[:10] + ["12345", ""])
    common = {"from_number": FROM, "script_id": SCRIPT}
    here = batchcall.validate(source, reports_dir=tmp_path / "a", **common)

    started = []
    real = prepare.Prepared.__init__

    def spy(self, planned, *, size_hint, check=None, children=None):
        real(self, planned, size_hint=size_hint, check=check, children=children)
        started.append(self.in_child)

    monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 0)
    monkeypatch.setattr(prepare.Prepared, "__init__", spy)
    child = batchcall.validate(source, reports_dir=tmp_path / "b", **common)

    assert started == [True]
    assert child.counts == here.counts == {"valid": 2500, "duplicate": 10, "invalid": 2}
    assert _results(child) == _results(here)


def test_a_failure_in_the_child_is_reported_not_swallowed(tmp_path, monkeypatch):
    """If planning crashes in the child, the run fails loudly instead of ending short."""
    monkeypatch.setattr(prepare, "PARTS", 1)  # one child, which `chunks` plans for
    source = write_contacts(tmp_path / "c.csv", au_mobiles(5))
    monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 0)

    def broken(planned, size=prepare.CHUNK):
        raise ValueError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(prepare, "chunks", broken)
    with pytest.raises(RuntimeError, match="boom"):
        batchcall.validate(source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r")


@pytest.mark.timeout(60)
def test_input_failing_midway_through_a_real_run_stops_it_instead_of_hanging(tmp_path, monkeypatch):
    """If the input turns out unreadable after sending has begun (workers busy, their queue
    full), the run ends with the input error and a report, instead of hanging."""
    monkeypatch.setattr(prepare, "PARTS", 1)  # one child, which `chunks` plans for
    source = write_contacts(tmp_path / "c.csv", au_mobiles(600))
    real = prepare.chunks

    def failing(planned, size=prepare.CHUNK):
        for n, chunk in enumerate(real(planned, 200)):
            if n == 2:
                raise batchcall.InputError("line 401 of c.csv cannot be read")
            yield chunk

    monkeypatch.setattr(prepare, "chunks", failing)
    with start_sandbox(SandboxConfig(latency=0.05)) as server:
        with pytest.raises(batchcall.InputError, match="line 401"):
            batchcall.run(source, from_number=FROM, script_id=SCRIPT, concurrency=2,
                          base_url=server.base_url, api_key=server.api_key,
                          reports_dir=tmp_path / "r")  # fmt: skip
        sent = len(server.calls())
    (run_dir,) = (tmp_path / "r").iterdir()
    counts = batchcall.status(run_dir).counts
    assert counts.get("scheduled", 0) == sent and sum(counts.values()) == 400


def test_an_input_error_in_the_planning_child_reaches_the_user_as_one(tmp_path, monkeypatch):
    """A problem with the input found by the planning child is the same clear InputError
    (exit 2) the user would get in-process, not a traceback."""
    monkeypatch.setattr(prepare, "PARTS", 1)  # one child, which `chunks` plans for
    source = write_contacts(tmp_path / "c.csv", au_mobiles(5))
    monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 0)

    def unreadable(planned, size=prepare.CHUNK):
        raise batchcall.InputError("byte 0x8f at offset 42 does not decode")
        yield  # pragma: no cover

    monkeypatch.setattr(prepare, "chunks", unreadable)
    with pytest.raises(batchcall.InputError, match="offset 42") as caught:
        batchcall.validate(source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r")
    assert caught.value.exit_code == 2


def _checked_rows() -> list[Checked]:
    request = CreatePhoneCallRequest(
        from_number=FROM,
        script_id=SCRIPT,
        contact=Contact(phone_number="+61412000001", first_name="Zoë"),
        scheduled_time="2030-03-04T09:00:00Z",
    )
    return [
        Checked(row=1, cells=("0412 000 001", "Zoë"), request=request, phone_e164="+61412000001"),
        Checked(
            row=2, cells=("12345", ""), outcome="invalid", error_code="invalid_phone", error="x"
        ),
    ]


def test_each_planned_row_carries_its_journal_columns_by_name():
    """A planned row names what the journal stores: its cells, request, state and time."""
    sent, invalid = map(prepare.encode, _checked_rows())
    assert isinstance(sent, PlannedRow)
    assert json.loads(sent.cells) == ["0412 000 001", "Zoë"]
    assert json.loads(sent.request or "")["contact"] == {
        "phone_number": "+61412000001",
        "first_name": "Zoë",
    }
    assert (sent.state, sent.scheduled_time_sent, sent.time_moved) == (
        "pending",
        "2030-03-04T09:00:00Z",
        0,
    )
    assert (invalid.state, invalid.request, invalid.error_code) == (
        "invalid",
        None,
        "invalid_phone",
    )


def test_rows_planned_in_a_child_arrive_as_the_same_planned_rows(monkeypatch):
    """Through the pipe from the planning child, each row is the PlannedRow this process
    would have built, field for field."""
    monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 0)

    async def collect() -> list[PlannedRow]:
        prepared = prepare.Prepared(prepare.Plan(iter(_checked_rows()), None), size_hint=0)
        try:
            assert prepared.in_child
            return [row async for chunk in prepared for row in chunk]
        finally:
            prepared.close()

    rows = asyncio.run(collect())
    assert all(type(row) is PlannedRow for row in rows)
    assert rows == [prepare.encode(c) for c in _checked_rows()]


def _striped(monkeypatch, chunk: int = 100, *, writers: bool = False) -> None:
    from batchcall import _writer

    monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 0)
    if writers:
        monkeypatch.setattr(_writer, "WRITER_MIN_BYTES", 0)
    monkeypatch.setattr(prepare, "CHUNK", chunk)
    # The duplicate index folds its first rows into its arrays many times over a test's rows.
    monkeypatch.setattr(prepare._Duplicates, "FOLD_AT", 50)


def test_two_children_sharing_a_text_file_plan_exactly_what_this_process_would(
    tmp_path, monkeypatch
):
    """Two children each checking every other chunk, the parent marking duplicates: the same
    results.csv as in-process, with repeats inside a chunk, across chunks, and across the
    two children's chunks."""
    phones = au_mobiles(950)
    rows = phones + phones[:130] + phones[500:520] + ["12345", ""] + phones[940:] + phones[::97]
    source = write_contacts(tmp_path / "c.csv", rows)
    for allow in (False, True):
        common = {"from_number": FROM, "script_id": SCRIPT, "allow_duplicates": allow}
        monkeypatch.setattr(prepare, "CHILD_MIN_BYTES", 1 << 40)
        here = batchcall.validate(source, reports_dir=tmp_path / f"a{allow}", **common)
        started: list[tuple[bool, int]] = []
        real = prepare.Prepared.__init__

        def spy(self, planned, *, size_hint, check=None, children=None, real=real, started=started):
            real(self, planned, size_hint=size_hint, check=check, children=children)
            started.append((self.in_child, len(self._processes)))

        _striped(monkeypatch)
        monkeypatch.setattr(prepare.Prepared, "__init__", spy)
        child = batchcall.validate(source, reports_dir=tmp_path / f"b{allow}", **common)
        monkeypatch.setattr(prepare.Prepared, "__init__", real)
        assert started == [(True, 2)]
        assert child.counts == here.counts
        assert _results(child) == _results(here)
    assert here.counts == {"valid": 1120, "invalid": 2}  # repeats allowed: all but the bad two


@pytest.mark.parametrize("writers", [False, True])  # checked by the report writer's children
def test_a_failure_in_a_striped_child_is_reported_not_swallowed(tmp_path, monkeypatch, writers):
    """If checking crashes in one of the two children, the run fails loudly."""
    source = write_contacts(tmp_path / "c.csv", au_mobiles(450))
    _striped(monkeypatch, writers=writers)

    def broken(checked):
        if checked.row > 250:  # the third chunk: the first child's second
            raise ValueError("boom")
        return None

    monkeypatch.setattr(prepare, "call_key", broken)
    with pytest.raises(RuntimeError, match="boom"):
        batchcall.validate(source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r")


@pytest.mark.parametrize("writers", [False, True])  # checked by the report writer's children
def test_an_input_error_in_a_striped_child_reaches_the_user_as_one(tmp_path, monkeypatch, writers):
    """An input error met by the children (both read the whole file) is the user's InputError."""
    source = write_contacts(tmp_path / "c.csv", au_mobiles(450))
    _striped(monkeypatch, writers=writers)
    real = prepare.Stages

    def unreadable():
        yield from []
        raise batchcall.InputError("byte 0x8f at offset 42 does not decode")

    def stages(source, check, allow_duplicates, stripes=None):
        return real(unreadable, check, allow_duplicates)  # read through `source`, not stripes

    monkeypatch.setattr(batchcall._runner, "Stages", stages)
    with pytest.raises(batchcall.InputError, match="offset 42") as caught:
        batchcall.validate(source, from_number=FROM, script_id=SCRIPT, reports_dir=tmp_path / "r")
    assert caught.value.exit_code == 2


_record = st.lists(st.sampled_from(["", " ", "\t", "0429 069 971", " Ann ", "'=1", "'\t", "x"]))


@settings(max_examples=60, deadline=None)
@given(records=st.lists(_record, max_size=30), results=st.booleans())
def test_a_childs_stripes_are_the_chunks_of_the_rows_it_checks(tmp_path_factory, records, results):
    """`Table.stripes` gives the same batches as slicing the rows (blank, whitespace-only and
    ragged records among them, and our own results.csv, whose apostrophes go first), each
    stripe every `parts`-th one, never a row made for another child's batch."""
    from batchcall._config import Settings
    from batchcall._load import open_table
    from batchcall._models import RESULT_COLUMNS

    path = tmp_path_factory.mktemp("stripes") / "c.csv"
    header = ["phone", "name", *(RESULT_COLUMNS if results else ())]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *records])
    table = open_table(path, Settings())
    for size in (1, 2, 3):
        rows, batches = iter(table), []
        while batch := list(itertools.islice(rows, size)):
            batches.append(batch)
        for parts in (1, 2, 3):
            for part in range(parts):
                assert list(table.stripes(part, parts, size)) == batches[part::parts]


@given(st.lists(st.text(), max_size=6))
def test_a_rows_cells_are_stored_as_json_dumps_writes_them(cells):
    assert prepare._CELLS_JSON(tuple(cells)) == json.dumps(cells, ensure_ascii=False)


def _planned_row(row: int) -> PlannedRow:
    return PlannedRow(row, "[]", "{}", f"+614{row:08d}", "pending", None, None, None, 0)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.lists(st.one_of(st.none(), st.integers(0, 12), st.just(2**64 - 1)), max_size=9),
        max_size=12,
    ),
    fold_at=st.integers(1, 6),
)
def test_the_duplicate_index_marks_each_repeat_with_its_first_row(chunks, fold_at):
    """Whether a key's first row is still in the dict or already folded into the sorted
    arrays, each repeat is marked a duplicate of that first row, and nothing else is marked;
    keys of None (rows never sent) repeat nothing."""
    index = prepare._Duplicates()
    index.FOLD_AT = fold_at
    first: dict[int, int] = {}
    row = 0
    for keys in chunks:
        rows = [_planned_row(row := row + 1) for _ in keys]
        marked = index.mark(list(rows), keys)
        for r, key, out in zip(rows, keys, marked, strict=True):
            earlier = None if key is None else first.setdefault(key, r.row)
            if earlier is None or earlier == r.row:
                assert out == r
            else:
                assert (out.state, out.error_code) == ("duplicate", "duplicate")
                assert f"as row {earlier} " in (out.error or "")


def test_the_report_writers_children_check_a_big_text_input_before_writing_its_reports(
    tmp_path, monkeypatch
):
    """Where the reports get writer children, those two children check the input first (two
    processes, not four): the same results.csv as in-process, duplicates across their chunks
    marked, and no process of the planning's own."""
    from batchcall import _writer as writer

    phones = au_mobiles(700)
    source = write_contacts(tmp_path / "c.csv", phones + phones[::3] + ["12345", ""])
    common = {"from_number": FROM, "script_id": SCRIPT}
    here = batchcall.validate(source, reports_dir=tmp_path / "a", **common)
    forked: list[int] = []
    real_start = writer.ReportWriter.__init__
    real_prepared = prepare.Prepared.__init__

    def counting(self, *args, **kwargs):
        real_start(self, *args, **kwargs)
        forked.append(len(self._processes))

    def spy(self, planned, *, size_hint, check=None, children=None):
        real_prepared(self, planned, size_hint=size_hint, check=check, children=children)
        forked.append(len(self._processes))
        assert self.in_child and len(self._conns) == 2

    _striped(monkeypatch)
    monkeypatch.setattr(writer, "WRITER_MIN_BYTES", 0)
    monkeypatch.setattr(writer.ReportWriter, "__init__", counting)
    monkeypatch.setattr(prepare.Prepared, "__init__", spy)
    shared = batchcall.validate(source, reports_dir=tmp_path / "b", **common)
    assert forked == [2, 0]
    assert shared.counts == here.counts == {"valid": 700, "duplicate": 234, "invalid": 2}
    assert _results(shared) == _results(here)
