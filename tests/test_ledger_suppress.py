"""Suppression: the team's list in the ledger and `--suppress FILE` lists, which fail closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from ledger_helpers import NOW, au_mobile, call

from batchcall import UsageError
from batchcall._ledger import Ledger, Policy, SuppressionList, open_ledger, parse_expiry

pytest_plugins = ["ledger_support"]

AT = NOW + timedelta(hours=3)


def _verdicts(ledger: Ledger, phones: list[str], policy: Policy) -> list[str | None]:
    calls = [call(p, at=AT, row=n) for n, p in enumerate(phones)]
    return [v.outcome for v in ledger.check(calls, policy, now=NOW)]


def test_lists_in_mixed_formats_suppress_the_same_e164_numbers(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A plain text list (national, spaced, E.164, comments), a CSV with reason and expires,
    and an xlsx written by Excel all normalise to E.164, as input phones do."""
    plain = tmp_path / "dnc.txt"
    plain.write_text(
        "# do-not-call, exported 2031-01-02\n0412 000 001\n\n+61 412 000 002  # by phone\n",
        encoding="utf-8",
    )
    table = tmp_path / "optouts.csv"
    table.write_text(
        "Mobile;Reason;Expires\n"
        "(04) 1200 0003;asked by email;\n"
        "+61412000004;complaint;2031-03-10\n",
        encoding="utf-8",
    )
    book = tmp_path / "crm.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.append(["Phone Number", "Notes"])
    sheet.append([61412000005, "deceased"])  # a numeric cell, as Excel stores it
    sheet.append(["0412 000 006", None])
    wb.save(book)

    lists = SuppressionList.load([plain, table, book], region="AU")
    assert len(lists) == 6
    policy = Policy(suppress=lists)
    phones = [au_mobile(n) for n in range(1, 8)]
    outcomes = _verdicts(ledger, phones, policy)
    assert outcomes == ["suppressed"] * 6 + [None]
    verdict = ledger.reserve(call(au_mobile(3), at=AT), policy, now=NOW)
    assert verdict.outcome == "suppressed"
    assert "optouts.csv line 2" in verdict.message and "asked by email" in verdict.message
    assert ledger.history(au_mobile(3)) == []


def test_an_expired_entry_no_longer_suppresses(ledger: Ledger, tmp_path: Path) -> None:
    """`expires` 2031-03-10 holds through that day everywhere, then lapses."""
    table = tmp_path / "optouts.csv"
    table.write_text("phone,expires\n+61412000001,2031-03-10\n", encoding="utf-8")
    policy = Policy(suppress=SuppressionList.load([table], region=None))
    before = datetime(2031, 3, 11, 11, 59, tzinfo=UTC)  # 10 March has not ended at UTC-12
    after = datetime(2031, 3, 11, 12, 0, tzinfo=UTC)
    c = call(au_mobile(1), at=after + timedelta(hours=1))
    assert ledger.check([c], policy, now=before)[0].outcome == "suppressed"
    assert ledger.check([c], policy, now=after)[0].action == "send"


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("dnc.txt", "+61412000001\n0412000002\nhello\n", "dnc.txt line 3"),
        ("dnc.txt", "+61412000001\n4.12E+08\n", "dnc.txt line 2"),
        ("dnc.csv", "phone,reason\n+61412000001,x\n12345,y\n", "dnc.csv line 3"),
        ("dnc.csv", "phone,expires\n+61412000001,next tuesday\n", "dnc.csv line 2"),
    ],
)
def test_a_line_that_is_not_a_number_stops_the_run(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    """Lists fail closed: a bad line is an error naming the file and line, never skipped."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match="fail closed") as caught:
        SuppressionList.load([path], region="AU")
    assert where in str(caught.value)


def test_an_unreadable_list_stops_the_run(tmp_path: Path) -> None:
    """A missing list, a list without a phone column, or a damaged workbook is an error that
    names the file."""
    with pytest.raises(UsageError, match=r"missing\.txt: no such file"):
        SuppressionList.load([tmp_path / "missing.txt"], region="AU")
    headers = tmp_path / "names.csv"
    headers.write_text("name,email\nAnn,a@example.com\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"names\.csv has no phone column"):
        SuppressionList.load([headers], region="AU")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(UsageError, match=r"broken\.xlsx"):
        SuppressionList.load([broken], region="AU")


def test_national_numbers_need_a_region(tmp_path: Path) -> None:
    """Without a region a national number cannot be read, and the error says what to do."""
    path = tmp_path / "dnc.txt"
    path.write_text("0412 000 001\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"line 1.*--region"):
        SuppressionList.load([path], region=None)


def test_a_number_added_mid_run_is_refused_at_the_next_reservation(
    location: str, team: str
) -> None:
    """Another process adds a number to the team's list while a run is sending: the run's
    very next reservation of that number is refused, though its plan passed it."""
    with open_ledger(location, team=team) as run, open_ledger(location, team=team) as operator:
        planned = [call(au_mobile(n), at=AT, row=n) for n in (1, 2)]
        assert [v.action for v in run.check(planned, Policy(), now=NOW)] == ["send", "send"]
        assert run.reserve(planned[0], Policy(), now=NOW).action == "send"
        operator.suppress(["0412 000 002"], now=NOW, reason="called in to opt out", region="AU")
        refused = run.reserve(planned[1], Policy(), now=NOW)
        assert refused.outcome == "suppressed"
        assert "team's list" in refused.message and "called in to opt out" in refused.message


def test_the_teams_list_add_list_expire_remove_and_import(ledger: Ledger, tmp_path: Path) -> None:
    """`batchcall suppress` manages this list: entries carry a reason and an expiry, an import
    never shortens an entry, and removed numbers can be called again."""
    until = NOW + timedelta(days=2)
    assert ledger.suppress(["+61412000001"], now=NOW, reason="complaint", until=until) == 1
    listed = ledger.suppressions()
    assert [(s.phone, s.reason, s.expires_at) for s in listed] == [
        (au_mobile(1), "complaint", until)
    ]
    after = NOW + timedelta(days=3)
    assert ledger.check([call(au_mobile(1), at=after)], Policy(), now=after)[0].action == "send"

    source = tmp_path / "dnc.txt"
    source.write_text("+61412000001\n+61412000002\n", encoding="utf-8")
    assert ledger.import_suppressions(source, now=NOW) == 2
    assert {s.phone: s.expires_at for s in ledger.suppressions()} == {
        au_mobile(1): None,
        au_mobile(2): None,
    }
    assert all("dnc.txt" in s.source for s in ledger.suppressions())
    ledger.suppress([au_mobile(3)], now=NOW)
    short = tmp_path / "short.csv"
    short.write_text(f"phone,expires\n{au_mobile(3)},2031-03-05\n", encoding="utf-8")
    ledger.import_suppressions(short, now=NOW)
    assert {s.phone: s.expires_at for s in ledger.suppressions()}[au_mobile(3)] is None

    assert ledger.unsuppress(["0412000002"], region="AU") == 1
    assert _verdicts(ledger, [au_mobile(1), au_mobile(2)], Policy()) == ["suppressed", None]


def test_a_bad_import_writes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    """An import stops at its first bad line and adds none of the lines before it."""
    source = tmp_path / "dnc.txt"
    source.write_text("+61412000001\nnot a number\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"dnc\.txt line 2"):
        ledger.import_suppressions(source, now=NOW)
    assert ledger.suppressions() == []


def test_expiry_dates_mean_the_end_of_that_day_everywhere() -> None:
    """A date keeps a number suppressed until that day has ended at UTC-12; a time with an
    offset is exact; a time without one is UTC; junk is None."""
    assert parse_expiry("2031-06-30") == datetime(2031, 7, 1, 12, tzinfo=UTC)
    assert parse_expiry("2031-06-30T00:00:00") == datetime(2031, 7, 1, 12, tzinfo=UTC)
    assert parse_expiry("2031-06-30T17:00+10:00") == datetime(2031, 6, 30, 7, tzinfo=UTC)
    assert parse_expiry("2031-06-30T17:00") == datetime(2031, 6, 30, 17, tzinfo=UTC)
    assert parse_expiry("soon") is None
