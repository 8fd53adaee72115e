"""What report.html needs of a run's rows, gathered in the same single pass over the journal
that writes results.csv (`Digest.tee`), at a bounded cost whatever the size of the run.

It keeps counts, at most `EXAMPLES` example rows per error code (phones and messages masked,
`_mask`), the calls by callee-local hour, weekday and day, what moved their times, and the
last ring time. A callee's zone is the row's timezone cell, the number's only zone, the run's
--contact-timezone or --timezone, else the first of the number's zones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ._journal import MOVED_BY_CAP, MOVED_BY_WINDOW, ReportRow, State
from ._mask import mask_phone, mask_text
from ._windows import phone_zone_names
from ._zones import UnknownZone, parse_zone

EXAMPLES = 10  # example rows shown per error code
# The sending rate a plan assumes when no --max-rate says otherwise: the API's limit is only
# learned while sending.
ASSUMED_RATE = 10.0
PLAN_DAYS = 31  # callee-local days a plan lists, at most
# States whose rows ring (or, in a dry run, would ring).
RINGING = frozenset({"scheduled", "pending"})

# What to do about each error code, in one sentence; a code not listed shows its first row's
# own message, which always says what to do.
FIXES = {
    "missing_phone": "Fill in the phone cell, or delete the row.",
    "invalid_phone": "Check the digits; a number without a country code is read in --region.",
    "damaged_phone": "Excel turned the number into 4.29E+08: retype it, with the column as Text.",
    "multiple_phones": "Keep one number in the cell, or pass --multi-phone first.",
    "phone_extension": "The API cannot dial extensions: give a direct number.",
    "invalid_scheduled_time": "Write the time as ISO 8601 (2030-03-02 09:30), or --date-format.",
    "past_scheduled_time": "Move the time into the future, or clear it to call at once.",
    "unknown_timezone": "Use an IANA zone name (Australia/Sydney) in the timezone column.",
    "missing_timezone": "Add a timezone column, or set --timezone.",
    "outside_calling_window": "Move the time into the calling window, or --outside-window defer.",
    "invalid_from_number": "Give --from-number (or the column) in E.164, e.g. +61291234567.",
    "missing_script_id": "Give --script-id, or a script_id column.",
    "rate_limited": "The API kept answering 429: `batchcall retry DIR` later.",
    "unavailable": "The API answered 503: `batchcall retry DIR` once it is back.",
    "server_error": "A 5xx: the call may exist. Check, then `retry DIR --include-unknown`.",
    "timeout": "No answer in time: the call may exist. Check, then `retry --include-unknown`.",
    "connection_lost": "The connection dropped: the call may exist. Check before re-sending.",
    "connect_failed": "The API could not be reached; nothing was sent. `batchcall retry DIR`.",
    "rejected": "The API refused the row (400); its message in failed.csv says why.",
    "interrupted": "The run stopped in flight: check the call, then `retry --include-unknown`.",
    "duplicate": "The same phone and time appear earlier in the file; only the first is called.",
    "suppressed": "The number is on a --suppress list: it is never called.",
    "already_scheduled": "The ledger shows this contact was already called (--repeat-window).",
    "frequency_capped": "Calling it would exceed --max-calls for this number.",
}


@dataclass
class Problem:
    code: str
    count: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # row, phone, message


@dataclass
class Digest:
    """What the report needs of the journal's rows, gathered one row at a time (`tee`)."""

    now: datetime
    zone_column: int | None = None
    fallback_zone: tzinfo | None = None
    unmasked: bool = False  # whole phones in the examples (--report-unmasked)
    settings: dict[str, Any] = field(default_factory=dict)  # the run's, as recorded
    problems: dict[str, Problem] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    weekdays: list[int] = field(default_factory=lambda: [0] * 7)
    days: Counter[str] = field(default_factory=Counter)
    moved_by_window: int = 0
    moved_by_cap: int = 0
    ringing: int = 0
    unzoned: int = 0
    last_ring: datetime | None = None
    _zones: dict[str, tzinfo | None] = field(default_factory=dict)
    _placed: dict[tuple[str | None, tzinfo | None], tuple[datetime, int, int, str]] = field(
        default_factory=dict
    )

    def tee(self, rows: Iterable[ReportRow]) -> Iterator[ReportRow]:
        for r in rows:
            self.add(r)
            yield r

    def add(self, r: ReportRow) -> None:
        if r.error_code and r.state != "scheduled":
            problem = self.problems.get(r.error_code)
            if problem is None:
                problem = self.problems[r.error_code] = Problem(r.error_code)
            problem.count += 1
            if len(problem.examples) < EXAMPLES:
                problem.examples.append(self._example(r))
        if r.state in RINGING and r.phone_e164:
            self._ring(r)

    def merge(self, other: Digest) -> None:
        """Add what `other` gathered of the rows after this digest's (a later part's)."""
        for code, theirs in other.problems.items():
            mine = self.problems.setdefault(code, Problem(code))
            mine.count += theirs.count
            mine.examples = (mine.examples + theirs.examples)[:EXAMPLES]
        self.hours = [a + b for a, b in zip(self.hours, other.hours, strict=True)]
        self.weekdays = [a + b for a, b in zip(self.weekdays, other.weekdays, strict=True)]
        self.days.update(other.days)
        self.moved_by_window += other.moved_by_window
        self.moved_by_cap += other.moved_by_cap
        self.ringing += other.ringing
        self.unzoned += other.unzoned
        if other.last_ring is not None and (
            self.last_ring is None or other.last_ring > self.last_ring
        ):
            self.last_ring = other.last_ring

    def plan(self, max_rate: float | None) -> dict[str, Any]:
        """validate's pre-flight plan: how many calls, how long sending them takes, when
        they ring (callee-local hours and days), the last ring, and what moved their times."""
        rate = float(max_rate) if max_rate else ASSUMED_RATE
        return {
            "calls": self.ringing,
            "sending_seconds": round(self.ringing / rate, 1),
            "rate": rate,
            "rate_given": bool(max_rate),
            "last_ring": self.last_ring.isoformat(timespec="minutes") if self.last_ring else None,
            "moved_by_window": self.moved_by_window,
            "moved_by_cap": self.moved_by_cap,
            "by_local_hour": list(self.hours),
            "by_local_day": dict(sorted(self.days.items())[:PLAN_DAYS]),
        }

    def _example(self, r: ReportRow) -> tuple[int, str, str]:
        if self.unmasked:
            return r.row, r.phone_e164 or "", r.error or ""
        return r.row, mask_phone(r.phone_e164), mask_text(r.error)

    def _ring(self, r: ReportRow) -> None:
        if r.time_moved:
            self.moved_by_window += bool(r.time_moved & MOVED_BY_WINDOW)
            self.moved_by_cap += bool(r.time_moved & MOVED_BY_CAP)
        self._ring_many(r.scheduled_time_sent, self._zone(r), 1)

    def _ring_many(self, sent: str | None, zone: tzinfo | None, rows: int) -> None:
        """`rows` calls that ring at `sent` (None: when sent) in `zone`."""
        self.ringing += rows
        key = (sent, zone)
        placed = self._placed.get(key)
        if placed is None:
            placed = self._place(*key)
        when, hour, weekday, day = placed
        if self.last_ring is None or when > self.last_ring:
            self.last_ring = when
        if zone is None:
            self.unzoned += rows
            return
        self.hours[hour] += rows
        self.weekdays[weekday] += rows
        self.days[day] += rows

    def _place(self, sent: str | None, zone: tzinfo | None) -> tuple[datetime, int, int, str]:
        """When a call rings, and its callee-local hour, weekday and day. A row without a time
        rings as soon as it is sent: about now, when the report is made."""
        when = self.now if sent is None else datetime.fromisoformat(sent).astimezone(UTC)
        local = when.astimezone(zone) if zone is not None else when
        placed = (when, local.hour, local.weekday(), local.date().isoformat())
        # Rows share their times and zones; the cache is bounded for a file where they do not.
        if len(self._placed) < 65536:
            self._placed[(sent, zone)] = placed
        return placed

    def _zone(self, r: ReportRow) -> tzinfo | None:
        col = self.zone_column
        cell = r.cells[col] if col is not None and col < len(r.cells) else ""
        return self._zone_of(r.phone_e164 or "", cell)

    def _zone_of(self, phone: str, cell: str) -> tzinfo | None:
        """The callee's zone: the row's timezone cell, the number's only zone, else the run's
        --contact-timezone or --timezone, else the first of the number's zones."""
        if cell.strip():
            try:
                return parse_zone(cell, source="")
            except UnknownZone:
                return None
        # Zones follow the number's leading digits; the last four never change them, and
        # caching on the rest makes a million rows cost a few thousand look-ups.
        key = phone[:-4]
        if key not in self._zones:
            names = phone_zone_names(phone)
            if len(names) == 1 or (names and self.fallback_zone is None):
                self._zones[key] = ZoneInfo(names[0])
            else:
                self._zones[key] = self.fallback_zone
        return self._zones[key]


_UNSEEN: Any = object()


class Tally:
    """What a digest needs of a part of the rows, gathered as a writer child writes their
    lines (`tee`), at a dictionary step per row: the rows that ring counted by time sent and
    callee zone (worked out once for each phone less its last four digits and timezone cell,
    which is all a zone depends on), their `time_moved` bits counted apart; the rows with an
    error code kept as examples and counted. `digest` then makes of it what `Digest.add` of
    each row would have, for `Digest.merge`. The counts are folded into the digest every
    `FOLD_AT` groups, and the zones forgotten as often, so memory stays bounded whatever the
    rows."""

    FOLD_AT = 20_000

    def __init__(self, width: int, meta: Mapping[str, Any], now: datetime) -> None:
        self.width = width
        self._digest = digest_for(meta, now)
        self.zone_column = self._digest.zone_column
        self.rings: dict[tuple[str, tzinfo | None], int] = {}
        # A zone by phone less its last four (with the timezone cell, when there is a column).
        self.zones: dict[Any, tzinfo | None] = {}
        self.moved: Counter[int] = Counter()  # rows that ring, by their nonzero time_moved bits
        self.examples: list[ReportRow] = []
        self.counts: Counter[str] = Counter()

    def tee(
        self, lines: Iterable[tuple[State, list[str], int]]
    ) -> Iterator[tuple[State, list[str]]]:
        """`lines` as `Journal.result_lines(moved=True)` gives them, less the bits, counted."""
        width, column = self.width, self.zone_column
        rings, zones, moved_rows = self.rings, self.zones, self.moved
        for state, line, moved in lines:
            if state in RINGING and (phone := line[width + 8]):
                where = phone[:-4] if column is None else (phone[:-4], line[column])
                zone = zones.get(where, _UNSEEN)
                if zone is _UNSEEN:
                    zone = self._zone(where, phone, line)
                key = (line[width + 9], zone)
                seen = rings.get(key)
                if seen is None:
                    if len(rings) >= self.FOLD_AT:
                        self._fold()
                        rings, moved_rows = self.rings, self.moved
                    rings[key] = 1
                else:
                    rings[key] = seen + 1
                if moved:
                    moved_rows[moved] += 1
            if line[width + 5] and state != "scheduled":
                self._problem(state, line)
            yield state, line

    def _zone(self, where: Any, phone: str, line: list[str]) -> tzinfo | None:
        if len(self.zones) >= self.FOLD_AT:
            self.zones.clear()
        column = self.zone_column
        cell = line[column] if column is not None else ""
        zone = self.zones[where] = self._digest._zone_of(phone, cell)
        return zone

    def _problem(self, state: State, line: list[str]) -> None:
        w = self.width
        code = line[w + 5]
        self.counts[code] += 1
        if self.counts[code] <= EXAMPLES:
            row, error, phone = int(line[w]), line[w + 6] or None, line[w + 8] or None
            self.examples.append(
                ReportRow(row, [], state, None, None, None, code, error, 0, phone, None, 0)
            )

    def _fold(self) -> None:
        digest = self._digest
        for (sent, zone), rows in self.rings.items():
            digest._ring_many(sent or None, zone, rows)
        for bits, rows in self.moved.items():
            digest.moved_by_window += rows if bits & MOVED_BY_WINDOW else 0
            digest.moved_by_cap += rows if bits & MOVED_BY_CAP else 0
        self.rings = {}
        self.moved = Counter()

    def digest(self) -> Digest:
        self._fold()
        digest = self._digest
        for r in self.examples:
            code = r.error_code or ""
            digest.problems.setdefault(code, Problem(code)).examples.append(digest._example(r))
        for code, count in self.counts.items():
            digest.problems.setdefault(code, Problem(code)).count = count
        digest._zones.clear()  # caches: not worth carrying to another process
        digest._placed.clear()
        return digest


def digest_for(meta: Mapping[str, Any], now: datetime) -> Digest:
    """An empty digest for a run, from its journal's meta (settings, timezone column)."""
    settings = meta.get("settings") or {}
    fallback = None
    for name in (settings.get("contact_timezone"), settings.get("timezone")):
        if name:
            try:
                fallback = parse_zone(name, source="")
                break
            except UnknownZone:
                continue
    return Digest(
        now=now,
        zone_column=meta.get("timezone_column"),
        fallback_zone=fallback,
        unmasked=bool(meta.get("report_unmasked")),
        settings=settings,
    )
