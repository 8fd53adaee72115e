"""Read a spreadsheet into `SourceRow`s: every cell as text, headers matched to fields, streamed.

CSV, TSV and TXT are read with the csv module, record by record, so a million-row file never sits
in memory and the first row is ready at once. XLSX and XLSM are streamed the same way, their
XML read in chunks by `_xlsx`, so the first request leaves while the rest of the sheet is still
unread. XLS (65,536 rows at most) and ODS go through calamine, whose cell values (int, float,
datetime, str) `_cell_text` turns into text row by row as they are read. Either way every cell
is the text a person sees, so no type inference ever touches a phone number. A text file's
encoding is decided first, and never guessed silently (see `_encodings`).

Headers are matched to fields in three steps, each documented where it lives:

1. `normalise_header`: the BOM and NBSP go, the name is trimmed, camelCase and API names are
   split into words (`FirstName`, `MobilePhone`), Salesforce's custom-field suffix `__c` is
   dropped (`Call_Time__c`), and case, spaces, `-` and `_` stop mattering.
2. `field_for`: the CRM shapes of a name. Google's `Phone 1 - Value` is `phone 1`, a leading
   record word goes (Pipedrive's `Person - Phone - Mobile` is `phone mobile`), and `<name> 1`
   is `<name>`: the first of numbered columns is the contact's; `Phone 2 - Value` is another
   number and is not taken.
3. `ALIASES`: the names that mean each field. A phone labelled for another line (`Home Phone`,
   `Business Phone`, `Person - Phone - Work`) is not the phone. Two columns that both mean one
   field stop the run, naming both; no column for the phone stops it too, naming the columns
   whose first `PHONE_SAMPLE_ROWS` rows hold phone numbers and the `--column` that picks one.

A Salesforce report export ends with lines that are not contacts ("Grand Totals (N records)",
"Confidential Information - Do Not Distribute", the copyright): `find_footer` finds them at the
end of the file, they are not read, and a warning says so.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import logging
import re
import shlex
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, NamedTuple

import phonenumbers

from . import _csvsafe as csvsafe
from . import _encodings as encodings
from . import _xlsx as xlsx
from ._config import Settings
from ._errors import InputError
from ._models import RESULT_COLUMNS, SourceRow

TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
SHEET_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".ods"})
_STREAMED_SHEETS = frozenset({".xlsx", ".xlsm"})  # read by `_xlsx`, as the XML streams
DELIMITERS = (",", ";", "\t", "|")

# Canonical field -> the header names that mean it, in normalised form (see `normalise_header`
# and `field_for`). Only a phone that is the contact's own number is here: a column labelled
# for another line (Home, Business, Work, Other, Fax) is never taken for it.
ALIASES: dict[str, tuple[str, ...]] = {
    "phone_number": (
        "phone number",
        "phone",
        "mobile",
        "tel",
        "telephone",
        "mobile phone",
        "phone mobile",
        "mobile number",
        "mobile phone number",
        "cell",
        "cell phone",
    ),
    "first_name": ("first name", "firstname", "given name", "forename"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "scheduled_time": ("scheduled time", "scheduled at", "call time"),
    "timezone": ("timezone", "time zone"),
    # A US state, for the state calling rules of `--calling-window us-tcpa`.
    "state": ("state", "us state", "state code"),
    "zip": ("zip", "zip code", "zipcode", "postcode", "postal code", "post code"),
    "from_number": ("from number",),
    "script_id": ("script id",),
}
FIELDS: tuple[str, ...] = tuple(ALIASES)
_ALIAS_TO_FIELD = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

# A file is one of our own results when it carries these outcome columns (older or hand-trimmed
# results may lack the later RESULT_COLUMNS, so only the core ones are required).
_RESULTS_MARKERS = frozenset({"row", "outcome", "call id", "error code", "phone e164"})

_SEPARATORS = re.compile(r"[\s_\-]+")
# camelCase and API names: a word starts at a capital after a small letter or digit
# (FirstName), or at the last capital of a run followed by a small letter (HTTPServer).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_CUSTOM_FIELD = re.compile(r"__c$", re.IGNORECASE)  # Salesforce's suffix of custom fields
# A first word naming the record, as CRMs prefix their columns ("Person - Phone - Mobile").
_RECORD_WORDS = frozenset({"person", "contact", "lead"})
# How many rows are looked at for phone numbers when no header names the phone column.
PHONE_SAMPLE_ROWS = 50
_SNIFF_CHARS = 64 * 1024
_CHUNK_BYTES = 1 << 20
# The csv module's default cap is 128 KiB a cell; a CRM notes column can hold more. The cap stays
# finite because a quote that is never closed turns the rest of the file into one cell.
FIELD_LIMIT = 16 << 20
# Bounds that no real contacts export comes near, checked before anything is sent (see
# `_check_structure`): past them a file is damaged, usually by a quote that is never closed.
MAX_RECORD_LINES = 100
MAX_CELL_CHARS = 4 << 20
MAX_LINE_CHARS = 4 << 20
# Workbook bounds (see `_check_workbook`): far above what a contacts export inflates to, far
# below what exhausts a machine.
MAX_UNZIPPED = 2 << 30
MAX_SHEET_CELLS = 50_000_000
_BOMB_MIN = 64 << 20  # an entry this big that inflated more than _BOMB_RATIO-fold is a bomb
_BOMB_RATIO = 500
_SHEET_XML = re.compile(r"xl/worksheets/[^/]+\.xml")
# A row's number (<row r="7">), a cell in a column past Z (<c r="XFD7">), and the far corner
# of <dimension ref="A1:E9">.
_ROW_REF = re.compile(rb'row r="(\d{1,7})"')
_WIDE_CELL_REF = re.compile(rb'r="([A-Z]{2,3})\d')
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension ref="(?:[A-Z]{1,3}\d{1,7}:)?([A-Z]{1,3})(\d{1,7})"')
# How a spreadsheet's bytes start: zip (XLSX, XLSM, ODS) and OLE2 (XLS).
log = logging.getLogger("batchcall")
_SHEET_MAGIC = {b"PK\x03\x04": "an XLSX or ODS workbook", b"\xd0\xcf\x11\xe0": "an XLS workbook"}


def normalise_header(name: str) -> str:
    """The form headers are matched in: no BOM/NBSP, trimmed, camelCase split into words,
    Salesforce's `__c` dropped, lower case, `-`/`_`/space alike."""
    cleaned = name.replace("\ufeff", "").replace("\xa0", " ").strip()
    cleaned = _CAMEL.sub(" ", _CUSTOM_FIELD.sub("", cleaned)).lower()
    return _SEPARATORS.sub(" ", cleaned).strip()


def field_for(normalised: str) -> str | None:
    """The field a normalised header names, after the CRM rules of the module docstring:
    `<name> N - Value` is `<name> N`, a leading record word goes, and `<name> 1` is `<name>`
    (the first of numbered columns; the second and later ones are other numbers)."""
    words = normalised.split()
    if len(words) >= 3 and words[-1] == "value" and words[-2].isdigit():
        words.pop()
    if len(words) >= 2 and words[0] in _RECORD_WORDS:
        words.pop(0)
    if len(words) >= 2 and words[-1] == "1":
        words.pop()
    return _ALIAS_TO_FIELD.get(" ".join(words))


# Normalised outcome column -> its name in RESULT_COLUMNS.
_RESULT_NAMES = {normalise_header(name): name for name in RESULT_COLUMNS}


def missing_outcome_columns(table: Table) -> str:
    """The outcome columns a results.csv needs that `table` lacks, as a user would write them."""
    have = {normalise_header(name) for name in table.header}
    return ", ".join(_RESULT_NAMES[n] for n in sorted(_RESULTS_MARKERS - have))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return digest.hexdigest()


@dataclass
class Table:
    """An opened input: its columns mapped to fields, and its rows on demand (see `__iter__`)."""

    path: Path
    header: list[str]
    fields: dict[str, int]
    objects: dict[tuple[str, str], int]
    unknown: list[str]
    warnings: list[str]
    is_results: bool
    # How to produce the raw records again, header included; each call starts from the top.
    _records: Any = field(repr=False)
    _keep: list[int] = field(repr=False)  # indexes of the pass-through columns in a raw record
    _prior: dict[str, int] = field(repr=False)  # outcome column -> index in a raw record
    has_rows: bool = True  # False when nothing but blank records follow the header
    # Index (from the top of the file) of the first record of a report footer, which is not read.
    _footer_at: int | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[SourceRow]:
        """Yield each non-blank record after the header, trimmed and padded to the header width.

        `row` counts records after the header, blank ones included, so that row N is the N-th
        line under the header in the user's spreadsheet.
        """
        with self._opened() as kept:
            yield from self._rows(enumerate(kept, 1))

    def stripes(self, part: int, parts: int, size: int) -> Iterator[list[SourceRow]]:
        """The batches of `size` rows that slicing `iter(self)` gives, every `parts`-th one
        from batch `part` on (`prepare.Stages`). The records of the other batches are only
        looked at for blank ones, which `row` counts but which make no row: making them rows
        cost a checking child a fifth of its time, for rows another child checks."""
        restore = csvsafe.restore if self.is_results else None
        with self._opened() as kept:
            numbered = enumerate(kept, 1)
            for index in itertools.count():
                if index % parts == part:
                    batch = list(itertools.islice(self._rows(numbered), size))
                    if batch:
                        yield batch
                    if len(batch) < size:
                        return
                elif _pass_rows(numbered, size, restore) < size:
                    return

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Iterator[list[str]]]:
        """The raw records after the header (and before a footer), closed on the way out."""
        records = self._records()
        kept = records if self._footer_at is None else itertools.islice(records, self._footer_at)
        try:
            _skip_to_header(kept)
            yield kept
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()

    def _rows(self, numbered: Iterator[tuple[int, list[str]]]) -> Iterator[SourceRow]:
        restore = csvsafe.restore if self.is_results else None
        keep = self._keep
        identity = keep == list(range(len(keep)))
        for number, record in numbered:
            if restore is not None:
                # Our own file: its apostrophes go before trimming, which could expose one.
                record = [restore(cell) for cell in record]
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            kept = _pick(cells, keep, identity)
            # Trimmed for reading; the cells as read are what the reports write back.
            raw = None if cells == record else _pick(record, keep, identity)
            prior = None
            if restore is not None:
                prior = {
                    name: (cells[i] if i < len(cells) else "") for name, i in self._prior.items()
                }
            yield SourceRow(number, tuple(kept), prior, None if raw is None else tuple(raw))


def _pass_rows(
    numbered: Iterator[tuple[int, list[str]]], size: int, restore: Callable[[str], str] | None
) -> int:
    """Read past the records of `size` rows (fewer at the end), as `Table._rows` would count
    them: a record is blank when all its cells, trimmed (and restored), are empty. How many
    rows there were."""
    rows = 0
    for _, record in numbered:
        text = "".join(record if restore is None else map(restore, record))
        if text and not text.isspace():
            rows += 1
            if rows == size:
                break
    return rows


def _pick(cells: list[str], keep: list[int], identity: bool) -> list[str]:
    """The pass-through columns of a record, padded to the header's width."""
    if identity:
        width = len(keep)
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        return cells[:width]
    return [cells[i] if i < len(cells) else "" for i in keep]


def open_table(path: Path, settings: Settings) -> Table:
    """Open `path`, read its header and map the columns; raise `InputError` if it cannot be used."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"Input file {path} does not exist or is not a file.")
    if suffix in TEXT_SUFFIXES:
        if settings.sheet:
            raise InputError(
                f"--sheet {settings.sheet!r} was given, but {path} is a text file ({suffix}), "
                "which has no sheets. Drop --sheet, or give the workbook itself."
            )
        source = _text_source(path, settings, suffix)
    elif suffix in SHEET_SUFFIXES:
        source = _sheet_source(path, settings)
    else:
        raise InputError(
            f"Unsupported input file type {suffix or '(none)'!r} for {path}. "
            "Use CSV, TSV, TXT, XLSX, XLSM, XLS or ODS."
        )
    first = source.records()
    try:
        header_at, raw_header = _find_header(first)
        # Looked at now so that a run can refuse a header without rows before it makes a
        # run directory.
        has_rows = raw_header is not None and _skip_to_header(first) is not None
    finally:
        close = getattr(first, "close", None)
        if close is not None:
            close()
    if raw_header is None:
        raise InputError(f"{path} has no header row: the file is empty.")
    header = [cell.strip() for cell in raw_header]
    table = _map_columns(path, header, settings, source.records)
    table.has_rows = has_rows
    table.warnings[:0] = source.notes
    if source.late is not None:
        source.late[:0] = table.warnings
        table.warnings = source.late
    if source.footer is not None and source.footer.at > header_at:
        table._footer_at = source.footer.at
        table.warnings.append(source.footer.warning(header_at))
    return table


def _find_header(records: Iterator[list[str]]) -> tuple[int, list[str] | None]:
    """The first non-blank record, and its index from the top."""
    for index, record in enumerate(records):
        if any(cell.strip() for cell in record):
            return index, record
    return -1, None


def _skip_to_header(records: Iterator[list[str]]) -> list[str] | None:
    return _find_header(records)[1]


class _Source(NamedTuple):
    """An input's records on demand (each call starts from the top), and what to say of it."""

    records: Callable[[], Iterator[list[str]]]
    footer: Footer | None = None
    notes: tuple[str, ...] = ()  # warnings about how it was read
    # Warnings found only as the records stream (a workbook's footer): the table's own list.
    late: list[str] | None = None


# --- report footers -----------------------------------------------------------------------------

# The lines Salesforce writes under a report's rows (Lightning: "Grand Totals (N records)";
# Classic: the report's name, the copyright, the notice, "Generated By: ..." and the company).
_FOOTER_MARKER = re.compile(
    r"grand totals? \(\d[\d,.]* records?\)|confidential information - do not distribute"
    r"|copyright (?:\(c\)|©) ?\d{4}(?:-\d{4})? salesforce\.com",
    re.IGNORECASE,
)
FOOTER_TAIL = 16  # records at the end of a file looked at for a footer


@dataclass(frozen=True)
class Footer:
    """A report footer at the end of a file: where it starts, and its lines' text."""

    at: int  # index of its first record, counting every record from the top of the file
    lines: tuple[str, ...]

    def warning(self, header_at: int) -> str:
        shown = ", ".join(repr(line) for line in self.lines[:3])
        more = f" and {len(self.lines) - 3} more" if len(self.lines) > 3 else ""
        return (
            f"Skipped the report footer at the end of the file (from row {self.at - header_at}: "
            f"{shown}{more}): it is not a contact, and nothing in it is called."
        )


def find_footer(tail: Iterable[tuple[int, list[str]]]) -> Footer | None:
    """A Salesforce report footer at the end of the records in `tail` (index, record), if any.

    It is the run of blank and one-cell records that ends the file, from its first blank one,
    holding at least one of the lines only that footer has. Data rows above the first blank
    stay rows, even when they hold one cell.
    """
    run: list[tuple[int, str]] = []
    for index, record in reversed(list(tail)):
        cells = [cell.strip() for cell in record]
        first = cells[0] if cells else ""
        if any(cells[1:]) and not _FOOTER_MARKER.match(first):
            break
        run.append((index, first))
    run.reverse()
    blanks = [i for i, (_, text) in enumerate(run) if not text]
    if not blanks:
        return None
    run = run[blanks[0] :]
    lines = tuple(text for _, text in run if text)
    if not any(_FOOTER_MARKER.match(line) for line in lines):
        return None
    return Footer(run[0][0], lines)


# --- columns ------------------------------------------------------------------------------------


def _map_columns(path: Path, raw: list[str], settings: Settings, records: Any) -> Table:
    normalised = [normalise_header(name) for name in raw]
    is_results = set(normalised) >= _RESULTS_MARKERS
    prior = {}
    if is_results:
        # Our report neutralised formula-looking headers too; give them back as written.
        raw = [csvsafe.restore(name) for name in raw]
        normalised = [normalise_header(name) for name in raw]
        prior = {_RESULT_NAMES[n]: i for i, n in enumerate(normalised) if n in _RESULT_NAMES}
    keep = [i for i in range(len(raw)) if i not in prior.values()]
    header = [raw[i].replace("\ufeff", "") for i in keep]
    columns = _Columns(path, header, [normalised[i] for i in keep])
    columns.map_explicitly(settings.columns)
    columns.match_aliases()
    if "phone_number" not in columns.fields:
        raise InputError(_no_phone(path, header, _sample_rows(records, keep), settings))
    warnings: list[str] = []
    if columns.unknown:
        warnings.append(
            "These columns are not sent, only copied to the results: "
            + ", ".join(repr(u) for u in columns.unknown)
            + "."
        )
    return Table(
        path=path,
        header=header,
        fields=columns.fields,
        objects=columns.objects,
        unknown=columns.unknown,
        warnings=warnings,
        is_results=is_results,
        _records=records,
        _keep=keep,
        _prior=prior,
    )


@dataclass
class _Columns:
    """Header names matched to fields: first batchcall.toml's mapping, then the aliases."""

    path: Path
    header: list[str]
    normalised: list[str]
    fields: dict[str, int] = field(default_factory=dict)
    objects: dict[tuple[str, str], int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)

    @property
    def found(self) -> str:
        return ", ".join(repr(h) for h in self.header) or "(none)"

    def map_explicitly(self, mapping: dict[str, str]) -> None:
        """batchcall.toml's [columns] mapping wins over aliases, for fields and objects."""
        for key, column in mapping.items():
            want = normalise_header(str(column))
            if want not in self.normalised:
                raise InputError(
                    f"The [columns] mapping in batchcall.toml maps {key} to {column!r}, but "
                    f"{self.path} has no such column. Columns found: {self.found}."
                )
            index = self.normalised.index(want)
            self.taken.add(index)
            if key in ALIASES:
                self.fields[key] = index
            elif "." in key and all(part.strip() for part in key.split(".", 1)):
                type_, name = (part.strip() for part in key.split(".", 1))
                self.objects[(type_, name)] = index
            else:
                raise InputError(
                    f"The [columns] mapping in batchcall.toml names an unknown field {key!r}. "
                    f"Fields: {', '.join(FIELDS)}, or <type>.<field> for an object."
                )

    def match_aliases(self) -> None:
        """Every other column: a field by alias, an object by `<type>.<field>`, or unknown."""
        matches: dict[str, list[int]] = {}
        for index, name in enumerate(self.normalised):
            if index in self.taken:
                continue
            target = field_for(name)
            written = self.header[index].strip()
            if target is not None and target in self.fields:
                self.unknown.append(written)  # the mapping picked another column
            elif target is not None:
                matches.setdefault(target, []).append(index)
            elif not self._as_object(written, index) and written:
                self.unknown.append(written)
        for target, indexes in matches.items():
            if len(indexes) > 1:
                raise InputError(
                    _two_columns(self.path, target, self.header, indexes[0], indexes[1])
                )
            self.fields[target] = indexes[0]

    def _as_object(self, written: str, index: int) -> bool:
        type_, dot, attr = written.partition(".")
        if not (dot and type_.strip() and attr.strip()):
            return False
        pair = (type_.strip(), attr.strip())
        if pair in self.objects:
            raise InputError(
                _two_columns(
                    self.path, f"{pair[0]}.{pair[1]}", self.header, self.objects[pair], index
                )
            )
        self.objects[pair] = index
        return True


def _two_columns(path: Path, target: str, header: list[str], first: int, second: int) -> str:
    return (
        f"{path} has two columns for {target}: {header[first]!r} and {header[second]!r}. "
        f"batchcall does not guess which one to use: pick one with "
        f"{_column_option(target, header[first])}, or in batchcall.toml, e.g.\n"
        f'  [columns]\n  {_toml_key(target)} = "{header[first]}"'
    )


def _column_option(target: str, column: str) -> str:
    """The `--column` option that maps `target` to `column`, quoted for a shell."""
    return f"--column {shlex.quote(f'{target}={column}')}"


def _sample_rows(records: Callable[[], Iterator[list[str]]], keep: list[int]) -> list[list[str]]:
    """The first `PHONE_SAMPLE_ROWS` non-blank rows under the header, in header order."""
    opened = records()
    try:
        _skip_to_header(opened)
        rows = (r for r in opened if any(cell.strip() for cell in r))
        sample = list(itertools.islice(rows, PHONE_SAMPLE_ROWS))
    finally:
        close = getattr(opened, "close", None)
        if close is not None:
            close()
    return [[r[i].strip() if i < len(r) else "" for i in keep] for r in sample]


def _no_phone(path: Path, header: list[str], rows: list[list[str]], settings: Settings) -> str:
    """Why no column was taken for phones, and, when some column holds them, how to pick it."""
    looked_for = ", ".join(repr(a) for a in ALIASES["phone_number"])
    found = ", ".join(repr(h) for h in header) or "(none)"
    message = (
        f"{path} has no phone column. Columns found: {found}. Looked for a header named "
        f"{looked_for} (any case, with spaces, '-' or '_', camelCase, 'Person - ' or ' 1 - "
        "Value' around it)."
    )
    region = default_region(settings)
    counts = []
    for index, name in enumerate(header):
        filled = [row[index] for row in rows if row[index]]
        phones = sum(1 for cell in filled if _looks_like_phone(cell, region))
        if filled and phones * 2 >= len(filled):
            counts.append((phones, len(filled), name))
    if not counts:
        return message + " Set phone_number with --column or in the [columns] mapping."
    shown = ", ".join(f"{name!r} ({phones} of {filled} filled)" for phones, filled, name in counts)
    best = max(counts, key=lambda c: c[0])[2]
    return (
        f"{message} These columns hold phone numbers in the first {len(rows)} rows: {shown}. "
        f"To call the numbers in {best!r}, run again with\n  "
        f"{_column_option('phone_number', best)}\n"
        f'or set phone_number = "{best}" under [columns] in batchcall.toml.'
    )


# Loose on purpose: a cell that could be one or several phone numbers, extensions included.
_PHONE_SHAPE = re.compile(r"[\d\s+().\-/,;:#xXet]+")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}")


def _looks_like_phone(cell: str, region: str | None) -> bool:
    """Whether a cell holds a phone number: valid for phonenumbers, or, without a region to
    read national numbers in, shaped like one (7 to 15 digits, no date)."""
    first = re.split(r":::|[,;\n]", cell, maxsplit=1)[0].strip()
    if not _PHONE_SHAPE.fullmatch(cell) or _DATE_LIKE.search(cell):
        return False
    try:
        number = phonenumbers.parse(first, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_valid_number(number):
        return True
    return region is None and 7 <= sum(c.isdigit() for c in first) <= 15


def default_region(settings: Settings) -> str | None:
    """--region, else the country of --from-number: what the validator will read numbers in."""
    if settings.region:
        return settings.region.strip().upper()
    if settings.from_number:
        try:
            number = phonenumbers.parse(settings.from_number, None)
        except phonenumbers.NumberParseException:
            return None
        region = phonenumbers.region_code_for_number(number)
        return None if region in (None, "ZZ", "001") else region
    return None


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


# --- text files ---------------------------------------------------------------------------------


def _text_source(path: Path, settings: Settings, suffix: str) -> _Source:
    _refuse_workbook(path)
    encoding = encodings.detect(path, settings.encoding)
    delimiter = _sniff_delimiter(path, encoding, suffix)
    footer = _check_structure(path, encoding, delimiter)
    notes: tuple[str, ...] = ()
    if not settings.encoding and encoding in encodings.CANDIDATES:
        notes = (
            f"{path.name} is not UTF-8; it was read as {encodings.describe(encoding)}. If "
            "names look wrong in results.csv, pass the right --encoding.",
        )

    def records() -> Iterator[list[str]]:
        # newline="" lets the csv module see quoted line breaks and CRLF as the writer meant them.
        if csv.field_size_limit() < FIELD_LIMIT:
            csv.field_size_limit(FIELD_LIMIT)
        with path.open(encoding=encoding, newline="", errors="strict") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                yield from reader
            except UnicodeDecodeError as exc:
                raise InputError(f"Cannot read {path} as {encoding} text: {exc}.") from exc
            except csv.Error as exc:
                hint = ""
                if "field limit" in str(exc):
                    hint = (
                        f' (a cell over {FIELD_LIMIT >> 20} MiB: usually a quote " that is '
                        "never closed)"
                    )
                raise InputError(
                    f"Cannot read {path} at line {reader.line_num}: {exc}{hint}."
                ) from exc

    return _Source(records, footer, notes)


def _refuse_workbook(path: Path) -> None:
    """A workbook saved with a text name would decode as some code page; say what it is."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    for magic, what in _SHEET_MAGIC.items():
        if head.startswith(magic):
            raise InputError(
                f"{path} looks binary, not text: it is {what} with a {path.suffix} name. "
                "Rename it to its real type (.xlsx, .ods or .xls)."
            )


def _check_structure(path: Path, encoding: str, delimiter: str) -> Footer | None:
    """Read the whole file once, before anything is sent, for what would silently lose rows.

    The csv module is forgiving: a quote that is never closed turns every later line into one
    cell of one record, and the run would call one row of a 5,000-row file with the rest as its
    name. So a record that spans more than `MAX_RECORD_LINES` lines or holds a cell over
    `MAX_CELL_CHARS` stops the run, naming the line where it began; so does a quote still open
    at the end of the file, a NUL anywhere, or a line over `MAX_LINE_CHARS` (found in plain
    text chunks, so a 200 MB line of tiny cells never reaches the csv parser).

    The same pass keeps the last records, to find a report footer (`find_footer`).
    """
    text = _check_text(path, encoding)
    if not text.quoted:
        # Without a quote, each line is one record and the csv module has nothing to object
        # to: the lines' count and the last lines say what the pass over the records would.
        unquoted = _unquoted_records(text, delimiter)
        if unquoted is not None:
            return find_footer(unquoted[1])
    limit = csv.field_size_limit(MAX_CELL_CHARS)
    try:
        last, tail = _check_records(path, encoding, delimiter)
    finally:
        csv.field_size_limit(limit)
    if last is not None and _ends_inside_quote(path, encoding, delimiter, last):
        raise InputError(_unclosed(path, last))
    return find_footer(tail)


@dataclass(frozen=True)
class _Text:
    """What `_check_text` saw of a whole file on its way."""

    quoted: bool  # a quote (") anywhere
    lines: int  # lines, the last one counted whether or not a line end closes it
    tail: str  # the file's last characters: its last chunk and the one before
    whole: bool  # whether `tail` is all of the file


def _check_text(path: Path, encoding: str) -> _Text:
    """No NUL, and no line longer than `MAX_LINE_CHARS` (CR, LF or CRLF ends), at read speed."""
    run = 0  # characters since the last line end
    offset = lines = 0
    quoted, before, chunk = False, "", ""
    with path.open(encoding=encoding, newline="", errors="replace") as fh:
        while piece := fh.read(_CHUNK_BYTES):
            if chunk[-1:] == "\r" and piece[:1] == "\n":
                lines -= 1  # a CRLF cut in two by the chunks is one line end
            before, chunk = chunk, piece
            _refuse_nul(path, encoding, chunk, offset)
            run = _line_run(path, encoding, chunk, offset, run)
            quoted = quoted or '"' in chunk
            lines += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")
            offset += len(chunk)
    if chunk and chunk[-1] not in "\r\n":
        lines += 1
    tail = before + chunk
    return _Text(quoted, lines, tail, len(tail) == offset)


def _refuse_nul(path: Path, encoding: str, chunk: str, offset: int) -> None:
    if "\x00" in chunk:
        line = _line_of(path, encoding, offset + chunk.index("\x00"))
        raise InputError(
            f"{path} holds a NUL byte on line {line}: it is binary or damaged, not a "
            "text export. Export the sheet again as CSV."
        )


def _line_run(path: Path, encoding: str, chunk: str, offset: int, run: int) -> int:
    """The characters since the last line end, after `chunk`; too many stop the run."""
    ends = [i for i in (chunk.find("\n"), chunk.find("\r")) if i >= 0]
    if ends:
        run += min(ends)
        if run <= MAX_LINE_CHARS:
            run = len(chunk) - 1 - max(chunk.rfind("\n"), chunk.rfind("\r"))
    else:
        run += len(chunk)
    if run > MAX_LINE_CHARS:
        line = _line_of(path, encoding, offset + len(chunk))
        raise InputError(
            f"{path}: line {line} is longer than {MAX_LINE_CHARS >> 20} MiB. A contacts "
            "file has short lines; this one is not, or it is damaged."
        )
    return run


_LINE_END = re.compile(r"\r\n|\r|\n")


def _unquoted_records(
    text: _Text, delimiter: str
) -> tuple[int | None, list[tuple[int, list[str]]]] | None:
    """`_check_records`' answer for a file without quotes, from `_check_text`'s view of it;
    None when its last lines are too long for that view to hold `FOOTER_TAIL` of them."""
    if not text.lines:
        return None, []
    lines = _LINE_END.split(text.tail)
    if lines[-1] == "":
        lines.pop()  # the last line end closes the last line; it opens none
    if not text.whole:
        # The tail may begin inside a line (chunks cut lines anywhere), or at its very end.
        lines = lines[1:]
        if len(lines) < FOOTER_TAIL:
            return None
    kept = lines[-FOOTER_TAIL:]
    records = [next(csv.reader([line], delimiter=delimiter), []) for line in kept]
    return text.lines, list(enumerate(records, text.lines - len(records)))


def _line_of(path: Path, encoding: str, position: int) -> int:
    """The 1-based line holding character `position` (only on the error path), in chunks."""
    line, last = 1, ""
    with path.open(encoding=encoding, newline="", errors="replace") as fh:
        while position > 0 and (chunk := fh.read(min(_CHUNK_BYTES, position))):
            position -= len(chunk)
            line += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")
            if last == "\r" and chunk.startswith("\n"):
                line -= 1  # a CRLF cut in two by the chunks is one line end
            last = chunk[-1:]
    return line


def _check_records(
    path: Path, encoding: str, delimiter: str
) -> tuple[int | None, list[tuple[int, list[str]]]]:
    """Every record's span. Returns the line where the last record began (None: no record),
    and the last `FOOTER_TAIL` records with their indexes."""
    quick = _quick_records(path, encoding, delimiter)
    return quick if quick is not None else _each_record(path, encoding, delimiter)


def _each_record(
    path: Path, encoding: str, delimiter: str
) -> tuple[int | None, list[tuple[int, list[str]]]]:
    """`_check_records`, record by record: the error names the line where a record began."""
    tail: deque[list[str]] = deque(maxlen=FOOTER_TAIL)
    count = 0
    with path.open(encoding=encoding, newline="", errors="strict") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start, last = 1, None
        try:
            for record in reader:
                if reader.line_num - start >= MAX_RECORD_LINES:
                    raise InputError(_unclosed(path, start))
                last, start = start, reader.line_num + 1
                tail.append(record)
                count += 1
        except UnicodeDecodeError as exc:
            raise InputError(f"Cannot read {path} as {encoding} text: {exc}.") from exc
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise InputError(_unclosed(path, start)) from exc
            raise InputError(f"Cannot read {path} at line {reader.line_num}: {exc}.") from exc
    return last, list(enumerate(tail, count - len(tail)))


def _quick_records(
    path: Path, encoding: str, delimiter: str
) -> tuple[int, list[tuple[int, list[str]]]] | None:
    """`_check_records`' answer without a Python step per record, when the file shows it:
    None whenever a record might span `MAX_RECORD_LINES` lines, the last record spans more
    than one, or the csv module or the decoder objects (the record by record pass then says
    where). A million records cost 0.5 s instead of 1.2 s, before anything can be sent."""
    with path.open(encoding=encoding, newline="", errors="strict") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            tail = deque(enumerate(reader), maxlen=FOOTER_TAIL)
        except (UnicodeDecodeError, csv.Error):
            return None
        lines = reader.line_num
    # The lines beyond one per record are all a multi-line record could span.
    if not tail or lines - (tail[-1][0] + 1) >= MAX_RECORD_LINES:
        return None
    if any("\n" in cell or "\r" in cell for cell in tail[-1][1]):
        return None  # the last record began before the last line: where, only the slow pass says
    return lines, list(tail)


def _unclosed(path: Path, line: int) -> str:
    return (
        f'{path}: the quote (") opened on line {line} is never closed, so the lines after it '
        "would run together into one cell and their rows would be lost. Close or remove the "
        f"quote on line {line} and run again."
    )


def _ends_inside_quote(path: Path, encoding: str, delimiter: str, start: int) -> bool:
    """Whether the file's last record, from line `start`, ends inside an open quote.

    Only strict parsing tells a quote left open at the end of the file from a last cell that
    spans lines legitimately, and only the last record needs it.
    """
    with path.open(encoding=encoding, newline="") as fh:
        tail = itertools.islice(fh, start - 1, None)
        try:
            for _ in csv.reader(tail, delimiter=delimiter, strict=True):
                pass
        except csv.Error as exc:
            return "unexpected end of data" in str(exc)
    return False


def _sniff_delimiter(path: Path, encoding: str, suffix: str) -> str:
    """Pick the delimiter that splits the first lines into the same, largest number of cells."""
    try:
        with path.open(encoding=encoding, newline="") as fh:
            sample = fh.read(_SNIFF_CHARS)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}.") from exc
    if "\x00" in sample:
        line = _line_of(path, encoding, sample.index("\x00"))
        raise InputError(
            f"{path} looks binary, not text: it holds a NUL byte on line {line} (is it a "
            f"spreadsheet saved with a {suffix} name?)."
        )
    lines = sample.splitlines()
    if len(sample) == _SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    lines = [line for line in lines if line.strip()][:20]
    if not lines:
        return "\t" if suffix == ".tsv" else ","
    best, best_score = "\t" if suffix == ".tsv" else ",", (0, 0)
    for delimiter in DELIMITERS:
        widths = [len(r) for r in csv.reader(lines, delimiter=delimiter)]
        if not widths or widths[0] < 2:
            continue
        consistent = sum(1 for w in widths if w == widths[0])
        score = (consistent, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


# --- spreadsheets -------------------------------------------------------------------------------


def _check_workbook(path: Path) -> None:
    """Refuse a workbook whose reading would exhaust memory, before any of it is read.

    The reader builds each sheet as a dense grid, so one stray cell at XFD1048576 in a 2 KB
    file asks for 17 billion cells (the process aborts asking for 512 GiB), and a zip entry
    can inflate a thousandfold. So the zip's declared sizes are bounded, and each worksheet's
    used range (its `<dimension>`, and the cell references themselves, which may disagree) is
    measured by streaming its XML, never holding it.
    """
    try:
        book = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # not a zip (an .xls), or damaged: the reader says so in its own words
    with book:
        entries = book.infolist()
        inflated = sum(entry.file_size for entry in entries)
        bombs = [e.filename for e in entries if _inflates_like_a_bomb(e)]
        if inflated > MAX_UNZIPPED or bombs:
            which = f" ({bombs[0]} alone inflates over {_BOMB_RATIO}-fold)" if bombs else ""
            raise InputError(
                f"{path} would inflate to {inflated >> 20} MiB when unzipped{which}: it is "
                "damaged or built to exhaust memory. Open it in Excel and save it again, or "
                "save the sheet as CSV."
            )
        for entry in entries:
            if _SHEET_XML.fullmatch(entry.filename):
                _check_sheet_extent(path, book, entry)


def _inflates_like_a_bomb(entry: zipfile.ZipInfo) -> bool:
    return entry.file_size > _BOMB_MIN and entry.file_size > _BOMB_RATIO * entry.compress_size


def _check_sheet_extent(path: Path, book: zipfile.ZipFile, entry: zipfile.ZipInfo) -> None:
    rows, columns = _sheet_extent(book, entry)
    if rows * columns > MAX_SHEET_CELLS:
        last = f"{_column_letters(columns)}{rows}"
        raise InputError(
            f"{path}: {entry.filename} reaches cell {last}, a grid of {rows * columns:,} cells "
            f"(at most {MAX_SHEET_CELLS:,} are read). Delete the stray cells beyond your data "
            "in Excel (or save the sheet as CSV) and run again."
        )


def _sheet_extent(book: zipfile.ZipFile, entry: zipfile.ZipInfo) -> tuple[int, int]:
    """The far corner of a worksheet's grid: its <dimension>, and its rows' and cells' own
    references, which a damaged or hostile file may make disagree.

    The patterns start with a literal, so `re` scans at memory speed (a 66 MB sheet in 0.2 s);
    a single-letter column is counted as Z rather than matched a million times.
    """
    rows = columns = 0
    tail = b""
    with book.open(entry) as xml:
        while chunk := xml.read(_CHUNK_BYTES):
            # The tail overlaps chunks, so a reference cut in two is still seen whole.
            text = tail + chunk
            if not tail and (dimension := _DIMENSION.search(text)):
                columns = _column_number(dimension.group(1))
                rows = int(dimension.group(2))
            rows = max([rows, *map(int, _ROW_REF.findall(text))])
            wide = _WIDE_CELL_REF.findall(text)
            columns = max([columns, *map(_column_number, wide)])
            if not wide and columns < 26 and b'r="' in text:
                columns = 26
            tail = text[-64:]
    return rows, columns


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _sheet_source(path: Path, settings: Settings) -> _Source:
    """A workbook's chosen sheet, row by row (see the module docstring); a report footer at its
    end is held back as the rows stream (`_without_footer`)."""
    _check_workbook(path)
    try:
        if path.suffix.lower() in _STREAMED_SHEETS:
            read = _xlsx_sheet(path, settings.sheet)
        else:
            read = _calamine_sheet(path, settings.sheet)
    except InputError:
        raise
    except Exception as exc:  # the readers raise their own types for damaged or encrypted files
        raise InputError(f"Cannot read {path} as a spreadsheet: {exc}{_sheet_hint(path)}") from exc

    late: list[str] = []

    def records() -> Iterator[list[str]]:
        try:
            yield from _without_footer(read(), late)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"Cannot read {path} as a spreadsheet: {exc}{_sheet_hint(path)}"
            ) from exc

    return _Source(records, late=late)


def _pick_sheet(path: Path, names: list[str], wanted: str | None) -> int:
    """The index of --sheet (a name, or a 1-based number), else of the first sheet."""
    if not wanted:
        return 0
    if wanted in names:
        return names.index(wanted)
    if wanted.isdigit() and 1 <= int(wanted) <= len(names):
        return int(wanted) - 1
    raise InputError(
        f"{path} has no sheet {wanted!r}. Sheets: " + ", ".join(repr(n) for n in names) + "."
    )


def _xlsx_sheet(path: Path, wanted: str | None) -> Callable[[], Iterator[list[str]]]:
    book = xlsx.Workbook(str(path))
    if not book.sheets:
        raise InputError(f"{path} holds no worksheet.")
    member = book.sheets[_pick_sheet(path, [name for name, _ in book.sheets], wanted)][1]
    # One Workbook for every pass: the shared strings read so far serve the next pass too.
    return lambda: book.rows(member)


def _calamine_sheet(path: Path, wanted: str | None) -> Callable[[], Iterator[list[str]]]:
    """XLS (at most 65,536 rows by its format) and ODS: calamine holds the sheet, and each
    row becomes text only as it is read."""
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(path))
    names = [str(n) for n in book.sheet_names]
    sheet = book.get_sheet_by_index(_pick_sheet(path, names, wanted))
    return lambda: ([_cell_text(v) for v in values] for values in sheet.iter_rows())


def _without_footer(records: Iterator[list[str]], late: list[str]) -> Iterator[list[str]]:
    """`records`, less a report footer at the end (`find_footer`), with a warning for it,
    logged and added to `late` (the table's warnings) when the end is reached.

    A workbook is read once, as it streams, so the last `FOOTER_TAIL` records are held back
    until the end shows whether they are a footer.
    """
    tail: deque[tuple[int, list[str]]] = deque()
    header_at = -1
    for index, record in enumerate(records):
        if header_at < 0 and any(cell.strip() for cell in record):
            header_at = index
        tail.append((index, record))
        if len(tail) > FOOTER_TAIL:
            yield tail.popleft()[1]
    footer = find_footer(t for t in tail if t[0] > header_at)
    for index, record in tail:
        if footer is not None and index >= footer.at:
            warning = footer.warning(header_at)
            if warning not in late:
                late.append(warning)
                log.warning("%s", warning)
            return
        yield record


def _sheet_hint(path: Path) -> str:
    """Why a spreadsheet would not open, guessed from its first bytes."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return "."
    if head.startswith(b"\xd0\xcf\x11\xe0") and path.suffix.lower() != ".xls":
        # Excel stores a password-protected workbook as an OLE2 container, whatever its name.
        return (
            f". It is an OLE2 file, not a zip: a password-protected workbook, or an old .xls "
            f"with a {path.suffix} name. Remove the password (or save it as .xlsx) and try again."
        )
    if not any(head.startswith(magic) for magic in _SHEET_MAGIC):
        control = sum(1 for b in head if b < 9 or 13 < b < 32)
        kind = "text" if head and not control else "neither a workbook nor text"
        return (
            f". It does not start like an XLSX, XLS or ODS file (it looks like {kind}); if it "
            "is a CSV, rename it to .csv."
        )
    return ". The workbook may be damaged: open it in Excel and save it again."


def _cell_text(value: Any) -> str:
    """The text of an Excel cell: whole numbers as their digits, datetimes in ISO 8601."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN: an empty cell
            return ""
        if value.is_integer() and abs(value) < 1e17:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        # Naive on purpose: the validator reads it in the row's or --timezone's zone.
        return value.replace(tzinfo=None).isoformat(sep="T", timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if value is None:
        return ""
    return str(value)
