"""Stream an XLSX/XLSM worksheet row by row, each cell as the text a person sees in Excel.

calamine (and pandas over it) builds a whole sheet in memory before handing over its first row:
for a million-row sheet that is seconds before the first call could leave and hundreds of MB.
Here the worksheet's XML is read from the zip in chunks and parsed incrementally (the stdlib's
expat-backed `XMLPullParser`), so rows come out as soon as their bytes are read, and memory holds
one chunk of XML, not the sheet.

The shared-string table (where Excel keeps every text cell) is read lazily too: Excel, Google
Sheets and LibreOffice write it in the order strings are first used, row by row, so the header
and the first rows need only its first entries; the rest is read as later rows ask for it. Its
`<si>` items are picked out with a regex over bytes, and only an item with rich-text runs or
phonetic hints goes through an XML parser.

Cell values (ECMA-376 Part 1, §18.3.1.4 `c`, §18.18.11 `ST_CellType`):
- text (`s`, `inlineStr`, a formula's `str` result) is kept exactly, Excel's `_xHHHH_` escapes
  decoded;
- a number is shown as Excel's General format would show a whole number, digits only (never
  `4155550100.0`), with the zeros of a zero-padded format such as `00000000000` (how a sheet
  keeps a phone's leading zero in a number column);
- a number in a date or time format becomes ISO 8601 (`2030-03-02`, `2030-03-02T09:30:00`,
  `09:30:00`), on the workbook's 1900 or 1904 calendar;
- booleans are TRUE/FALSE, errors their text (`#N/A`), and a formula's cached result is the
  value: a formula is never evaluated.
"""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from array import array
from collections.abc import Iterator
from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

_CHUNK = 1 << 20
_REL_OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
# Built-in number formats that show a date or time (ECMA-376 Part 1, §18.8.30), and those that
# show only a time.
_DATE_FORMATS = frozenset({*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)})
_TIME_FORMATS = frozenset({18, 19, 20, 21, 45, 46, 47})
_DATETIME_FORMAT = 22  # m/d/yy h:mm
# In a custom format code, what is not a date token: quoted text, escapes, [Red] or [$-409]
# (but not the elapsed-time [h], [mm], [ss]).
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.')
_ZERO_PADDED = re.compile(r"0+")
_XML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SI = re.compile(rb"<(?:\w+:)?si\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?si>)", re.S)
_PLAIN_T = re.compile(rb'<(?:\w+:)?t(?: xml:space="preserve")?>([^<]*)</(?:\w+:)?t>')
_COLUMN = re.compile(r"[A-Z]+")
# The worksheet's XML, by pattern over bytes: an XML parser building every element cost 35 µs a
# row; these cost a few. They hold because `<` never appears raw in XML text or attributes, and
# no element nests in itself (ECMA-376 Part 1, §18.3.1.73 row, §18.3.1.4 c).
_ROW = re.compile(rb"<(?:\w+:)?row\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?row>)", re.S)
_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.S)
_R = re.compile(rb"""\br=["']([A-Z]*)(\d*)""")
_T = re.compile(rb"""\bt=["'](\w+)""")
_S = re.compile(rb"""\bs=["'](\d+)""")
_V = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")
_IS = re.compile(rb"<(?:\w+:)?is>(.*?)</(?:\w+:)?is>", re.S)
_DIMENSION = re.compile(rb"""<(?:\w+:)?dimension\b[^>]*\bref=["']([A-Z]*)""")
_MAX_ROW_BYTES = 64 << 20
# What `_text` would change in a plain item: an entity, a CR, Excel's _xHHHH_ escape.
_NEEDS_DECODING = re.compile(rb"[&\r]|_x")
# The shape Excel, Sheets, LibreOffice and openpyxl write (r, s, t in that order; a value, an
# inline string or a plain formula): one C-level pass picks every such cell of a row out at
# once. A row with any other shape goes through `_CELL`, one cell at a time.
_FAST_CELL_TEXT = (
    rb'<c r="([A-Z]{1,3})\d+"(?: s="(\d+)")?(?: t="(\w+)")?(?:/>|>'
    rb"(?:<f>[^<]*</f>|<f[^>]*/>)?"
    rb'(?:<v>([^<]*)</v>|<v/>|<is><t(?: xml:space="preserve")?>([^<]*)</t></is>)?</c>)'
)
_FAST_CELL = re.compile(_FAST_CELL_TEXT)
_FAST_ROW = re.compile(rb"(?:\s*(?:" + _FAST_CELL_TEXT + rb"))*\s*")
_EPOCH_1900 = datetime(1899, 12, 30)  # Excel's day 0, with its 1900 leap-year bug folded in
_EPOCH_1904 = datetime(1904, 1, 1)

# What a cell's style says about its number: a date/time kind, or the width of zero padding.
_Style = tuple[str, int]  # ("date" | "datetime" | "time" | "", zero-pad width)
_PLAIN: _Style = ("", 0)


class XlsxError(Exception):
    """The workbook's structure is not what a spreadsheet writer produces."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class Workbook:
    """An open XLSX/XLSM file: its sheets by name, styles, and shared strings read on demand."""

    def __init__(self, path: str) -> None:
        self._zip = zipfile.ZipFile(path)
        self._names = set(self._zip.namelist())
        workbook = ET.fromstring(self._zip.read("xl/workbook.xml"))
        targets = self._relationships("xl/_rels/workbook.xml.rels")
        self.sheets: list[tuple[str, str]] = []  # (name, zip member)
        date1904 = False
        for elem in workbook.iter():
            name = _local(elem.tag)
            if name == "workbookPr":
                date1904 = elem.get("date1904", "0").lower() in ("1", "true")
            elif name == "sheet":
                rid = elem.get(f"{{{_REL_OFFICE}}}id") or elem.get("id") or ""
                if rid in targets:
                    self.sheets.append((elem.get("name") or "", targets[rid]))
        self._epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
        self._styles = self._read_styles()
        shared = next((t for t in targets.values() if t.endswith("sharedStrings.xml")), None)
        self.strings = _SharedStrings(self._zip, shared if shared in self._names else None)

    def close(self) -> None:
        self._zip.close()

    def _relationships(self, member: str) -> dict[str, str]:
        targets = {}
        for rel in ET.fromstring(self._zip.read(member)):
            target = rel.get("Target") or ""
            # Targets are relative to xl/, or absolute within the package ("/xl/...").
            path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
            targets[rel.get("Id") or ""] = posixpath.normpath(path)
        return targets

    def _read_styles(self) -> list[_Style]:
        if "xl/styles.xml" not in self._names:
            return []
        root = ET.fromstring(self._zip.read("xl/styles.xml"))
        codes: dict[int, str] = {}
        styles: list[_Style] = []
        for elem in root:
            if _local(elem.tag) == "numFmts":
                for fmt in elem:
                    codes[int(fmt.get("numFmtId", "0"))] = fmt.get("formatCode", "")
            elif _local(elem.tag) == "cellXfs":
                styles = [_style(int(xf.get("numFmtId", "0")), codes) for xf in elem]
        return styles

    def rows(self, member: str) -> Iterator[list[str]]:
        """The worksheet's rows from its first, a skipped row number yielding an empty row, so
        that row N of the sheet is the N-th record; cells are placed by their column."""
        expected, first_column, pending = 1, -1, b""
        with self._zip.open(member) as xml:
            while True:
                chunk = xml.read(_CHUNK)
                text = pending + chunk
                if first_column < 0 and (b"sheetData" in text or not chunk):
                    # <dimension> comes before <sheetData>, so it is in the text by now.
                    dimension = _DIMENSION.search(text)
                    first_column = _first_column(dimension.group(1)) if dimension else 0
                end = 0
                for match in _ROW.finditer(text):
                    end = match.end()
                    attributes, body = match.groups()
                    found = _R.search(attributes)
                    number = int(found.group(2)) if found and found.group(2) else expected
                    while expected < number:
                        expected += 1
                        yield []
                    expected = number + 1
                    yield self._cells(body, first_column) if body else []
                pending = text[end:]
                if not chunk:
                    break
                if len(pending) > _MAX_ROW_BYTES:
                    raise XlsxError(f"a row of {member} is over {_MAX_ROW_BYTES >> 20} MiB")

    def _cells(self, body: bytes, first: int) -> list[str]:
        if _FAST_ROW.fullmatch(body) is None:
            return self._any_cells(body, first)
        cells: list[str] = []
        styles, strings = self._styles, self.strings
        for letters, style, type_, value, inline in _FAST_CELL.findall(body):
            at = _column_at(letters) - first
            if at > len(cells):
                cells.extend([""] * (at - len(cells)))
            if type_ == b"s" and value:
                cells.append(strings[int(value)])
            elif inline or type_ == b"inlineStr":
                cells.append(_text(inline))
            elif not value:
                cells.append("")
            elif type_ in (b"", b"n"):
                shown = styles[int(style)] if style and int(style) < len(styles) else _PLAIN
                if shown is _PLAIN and value.isdigit():
                    cells.append(value.decode())  # a whole number: its digits as Excel shows them
                else:
                    cells.append(_number(value.decode(), shown, self._epoch))
            else:
                cells.append(self._typed(type_, value))
        return cells

    def _typed(self, type_: bytes, value: bytes) -> str:
        if type_ == b"b":
            return "TRUE" if value.strip() in (b"1", b"true") else "FALSE"
        # str (a formula's text result), e (an error such as #N/A), d (an ISO date)
        return _text(value)

    def _any_cells(self, body: bytes, first: int) -> list[str]:
        """Cells of any shape: attributes in any order, formulas with attributes, rich text."""
        cells: list[str] = []
        for match in _CELL.finditer(body):
            attributes, content = match.groups()
            ref = _R.search(attributes)
            if ref is not None and ref.group(1):
                at = _column_at(ref.group(1)) - first
                if at > len(cells):
                    cells.extend([""] * (at - len(cells)))
            kind = _T.search(attributes)
            type_ = kind.group(1) if kind is not None else b"n"
            value = _V.search(content) if content else None
            inline = _IS.search(content) if content else None
            if inline is not None:
                cells.append(_si_text(inline.group(1)))
            elif value is None:
                cells.append("")
            elif type_ == b"s":
                cells.append(self.strings[int(value.group(1))])
            elif type_ == b"n":
                style = _S.search(attributes)
                at_style = int(style.group(1)) if style else 0
                shown = self._styles[at_style] if at_style < len(self._styles) else _PLAIN
                cells.append(_number(value.group(1).decode(), shown, self._epoch))
            else:
                cells.append(self._typed(type_, value.group(1)))
        return cells


_COLUMN_AT: dict[bytes, int] = {}


def _column_at(letters: bytes) -> int:
    at = _COLUMN_AT.get(letters)
    if at is None:
        at = _COLUMN_AT[letters] = _column_index(letters.decode())
    return at


def _first_column(ref: bytes) -> int:
    """The 0-based first column of `<dimension ref="B1:F9">`: the used range may start past A."""
    match = _COLUMN.match(ref.decode())
    return _column_index(match.group()) if match else 0


def _column_index(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number - 1


def _inline_text(elem: ET.Element) -> str:
    """The text of `<is>` or `<si>`: its `<t>`, or its runs' `<t>`s, never phonetic hints."""
    parts: list[str] = []
    for child in elem:
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return _unescape_x("".join(parts))


def _unescape_x(text: str) -> str:
    # Excel writes characters XML cannot carry (a CR, a control code) as _xHHHH_.
    return _XML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


def _number(value: str, style: _Style, epoch: datetime) -> str:
    kind, pad = style
    try:
        number = float(value)
    except ValueError:
        return value
    if kind and number == number and 0 <= number < 2958466:  # up to 9999-12-31
        moment = epoch + timedelta(days=number)
        moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
        if kind == "time" or (number < 1 and kind == "datetime"):
            return moment.time().isoformat()
        if kind == "date" and moment.time() == datetime.min.time():
            return moment.date().isoformat()
        return moment.isoformat(sep="T", timespec="seconds")
    if number.is_integer() and abs(number) < 1e17:
        digits = str(int(number))
        if pad and len(digits.lstrip("-")) < pad:
            sign, digits = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
            return sign + digits.zfill(pad)
        return digits
    return repr(number)


def _style(number_format: int, codes: dict[int, str]) -> _Style:
    if number_format in _DATE_FORMATS:
        if number_format in _TIME_FORMATS:
            return "time", 0
        return ("datetime" if number_format == _DATETIME_FORMAT else "date"), 0
    code = codes.get(number_format)
    if code is None:
        return _PLAIN
    if _ZERO_PADDED.fullmatch(code):
        return "", len(code)
    bare = _FORMAT_LITERALS.sub("", code.split(";")[0]).lower().replace("am/pm", "")
    has_time = "h" in bare or "s" in bare
    # "m" is months in a date and minutes beside hours or seconds.
    has_date = "y" in bare or "d" in bare or ("m" in bare and not has_time)
    if has_date and has_time:
        return "datetime", 0
    if has_date:
        return "date", 0
    if has_time:
        return "time", 0
    return _PLAIN


class _SharedStrings:
    """xl/sharedStrings.xml, read as far as the highest index asked for so far.

    Kept as one UTF-8 buffer and the offsets where each string ends, decoded when asked for: a
    million distinct strings as Python `str`s cost about 75 bytes each beside their text, which
    was a third of a million-row workbook's peak memory.
    """

    def __init__(self, book: zipfile.ZipFile, member: str | None) -> None:
        self._text = bytearray()
        self._ends = array("Q")
        self._stream = book.open(member) if member is not None else None
        self._pending = b""

    def __getitem__(self, index: int) -> str:
        ends = self._ends
        while index >= len(ends) and self._stream is not None:
            self._read_more()
        if not 0 <= index < len(ends):
            raise XlsxError(f"a cell refers to shared string {index}, past the table's end")
        return self._text[ends[index - 1] if index else 0 : ends[index]].decode()

    def _read_more(self) -> None:
        assert self._stream is not None
        chunk = self._stream.read(_CHUNK)
        if not chunk:
            self._stream.close()
            self._stream = None
            chunk = b""
        text = self._pending + chunk
        end = 0
        buffer, ends = self._text, self._ends
        for match in _SI.finditer(text):
            end = match.end()
            body = match.group(1)
            plain = _PLAIN_T.fullmatch(body) if body else None
            if plain is not None and not _NEEDS_DECODING.search(plain.group(1)):
                buffer += plain.group(1)  # already the text, as UTF-8
            else:
                buffer += _si_text(body).encode()
            ends.append(len(buffer))
        self._pending = text[end:]


def _si_text(body: bytes | None) -> str:
    """The text of a shared string `<si>` or an inline `<is>`, from the bytes inside it."""
    if not body:
        return ""
    plain = _PLAIN_T.fullmatch(body)
    if plain is not None:
        return _text(plain.group(1))
    if body.startswith(b"<") and b"<" not in body[1:] and body.endswith(b"/>"):
        return ""  # <t/>
    # Rich text or phonetic hints: parse the item (namespaces declared so prefixes resolve).
    wrapped = b'<si xmlns="x" xmlns:x="x">' + body + b"</si>"
    return _inline_text(ET.fromstring(wrapped))


def _text(raw: bytes) -> str:
    """XML character data as a parser would give it: line ends normalised, entities decoded;
    then Excel's own `_xHHHH_` escapes."""
    text = raw.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = html.unescape(text)
    return _unescape_x(text)
