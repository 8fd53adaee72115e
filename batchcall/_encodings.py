"""Which encoding a text export is in: decided before anything is sent, never guessed silently.

The order, first answer wins:

1. `--encoding`, when given.
2. A byte-order mark: UTF-8, UTF-16 LE or BE (Excel's "Unicode Text"), UTF-32.
3. UTF-16 without a BOM, told by its NULs: text that is mostly ASCII has a NUL in every other
   byte, at odd offsets in little endian and even ones in big endian.
4. UTF-8, when the whole file decodes as UTF-8 (plain ASCII included).
5. Otherwise a legacy 8-bit code page. Bytes alone cannot tell these apart (every byte is a
   character in most of them), so batchcall reads the lines that hold non-ASCII bytes (a few for
   every distinct byte value, wherever it is in the file) in each candidate and keeps the
   readings that are clean:

   - batchcall's word check: no word broken by its reading. A wrong code page shows in names
     as a case flip inside a word ("JosŽ", "MŸller"), a symbol glued to letters ("Zo‘",
     "Sœilleabh‡in"), a control character, two scripts in one word, or a Latin word made mostly
     of accented letters (Cyrillic or Greek read as cp1252: "Èâàí");
   - charset-normalizer's mess ratio (its "chaos"), as a tie-break between clean readings.

   Western readings (cp1252, Mac Roman, ISO-8859-15: what Excel, Outlook and Salesforce write
   for Western locales) are preferred when one is clean; the other code pages are considered
   when none is. When more than one reading is left, and they read the bytes differently, the
   run stops (exit 2) showing each reading of the first word they disagree on, and asks for
   `--encoding`: a wrong guess would send every call with mangled names.

Known limit: code pages that differ from cp1252 only in which letter a byte is (cp1250's "ř"
is cp1252's "ø") cannot be told apart by shape, so a Czech or Polish file whose only non-ASCII
letters are of that kind reads as cp1252; the run's warnings say which encoding was used, and
`--encoding cp1250` reads it right.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._errors import InputError

_CHUNK_BYTES = 1 << 20
# What each candidate is, in the words of the tool that writes it; the order is the preference
# when two names read the sample the same way.
WESTERN = {
    "cp1252": "Windows Western: Excel's CSV and Outlook on Windows",
    "mac_roman": "Mac Roman: Excel for Mac's 'CSV (Macintosh)'",
    "iso8859_15": "ISO-8859-15: Unix and LibreOffice 'Western Europe'",
}
OTHERS = {
    "cp1250": "Windows Central European",
    "iso8859_2": "ISO-8859-2 Central European",
    "cp1251": "Windows Cyrillic",
    "koi8_r": "KOI8-R Cyrillic",
    "cp1253": "Windows Greek",
    "iso8859_7": "ISO-8859-7 Greek",
    "cp1254": "Windows Turkish",
    "cp1257": "Windows Baltic",
    "cp932": "Japanese Shift-JIS (Windows)",
    "gb18030": "Chinese GB18030",
    "big5": "Traditional Chinese Big5",
    "cp949": "Korean (Windows)",
}
CANDIDATES = {**WESTERN, **OTHERS}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BOM_NAMES = {"utf-32": "UTF-32", "utf-8-sig": "UTF-8", "utf-16": "UTF-16"}
# Sampling: this many lines for each distinct non-ASCII byte value, each at most _LINE_BYTES.
_LINES_PER_BYTE = 8
_LINE_BYTES = 512
_ASCII = bytes(range(128))
# How many NULs mark UTF-16: in a third of the bytes at one parity, and almost none at the other.
_UTF16_HEAD = 4096
_UTF16_NULS = 0.3
_UTF16_STRAY = 0.05
# Letters that only Icelandic writes: in a Western reading they are more likely another code
# page's letters, so the other readings stay in the running.
_RARE_WESTERN = frozenset("ÐðÞþ")
# Readings whose chaos is this close to the cleanest one are ties.
_CHAOS_TIE = 0.01
# charset-normalizer's own threshold: readings messier than this it does not return at all.
_CHAOS_LIMIT = 0.5


def detect(path: Path, explicit: str | None) -> str:
    """The codec to read `path` with, or an `InputError` saying why none can be trusted.

    Whichever is picked, the whole file is decoded once here, so a bad byte far down stops the
    run before a run directory exists rather than halfway through the calls.
    """
    if explicit:
        try:
            codecs.lookup(explicit)
        except LookupError as exc:
            raise InputError(
                f"Unknown --encoding {explicit!r}; use a Python codec name such as utf-8, "
                "cp1252, mac_roman or utf-16."
            ) from exc
        check_decodes(path, explicit, hint="Check the --encoding.")
        return explicit
    head = _head(path)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            what = _BOM_NAMES[codec]
            check_decodes(
                path, codec, hint=f"It starts with a {what} BOM but is damaged further on."
            )
            return codec
    utf16 = _utf16_without_bom(head)
    if utf16 is not None:
        check_decodes(
            path,
            utf16,
            hint=f"Its NUL bytes say {utf16.upper()} without a BOM, but it does not decode as "
            "that: pass --encoding.",
        )
        return utf16
    # A cp1252 file is usually valid UTF-8 for thousands of rows before its first accent, so
    # the whole file is checked.
    not_utf8 = first_bad_byte(path, "utf-8")
    if not_utf8 is None:
        return "utf-8"
    codec = _legacy(path, not_utf8)
    check_decodes(path, codec, hint=f"It read as {codec} up to here; pass --encoding.")
    return codec


def describe(codec: str) -> str:
    """A codec as the run's warnings name it: `mac_roman (Mac Roman: Excel for Mac's ...)`."""
    return f"{codec} ({CANDIDATES[codec]})" if codec in CANDIDATES else codec


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(_UTF16_HEAD)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def _utf16_without_bom(head: bytes) -> str | None:
    size = len(head) // 2 * 2
    if size < 4:
        return None
    even, odd = head[0:size:2], head[1:size:2]
    even_nuls, odd_nuls = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nuls >= _UTF16_NULS and even_nuls <= _UTF16_STRAY:
        return "utf-16-le"
    if even_nuls >= _UTF16_NULS and odd_nuls <= _UTF16_STRAY:
        return "utf-16-be"
    return None


def check_decodes(path: Path, encoding: str, *, hint: str) -> None:
    bad = first_bad_byte(path, encoding)
    if bad is not None:
        offset, byte = bad
        raise InputError(
            f"{path} is not {encoding} text: byte 0x{byte:02x} at offset {offset} does not "
            f"decode. {hint}"
        )


def first_bad_byte(path: Path, encoding: str) -> tuple[int, int] | None:
    """Where the file first fails to decode as `encoding`, or None; at disk speed."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    # exc.object is the decoder's held-back bytes followed by this chunk.
                    held = len(exc.object) - len(chunk)
                    return offset - held + exc.start, exc.object[exc.start]
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset, 0
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return None


# --- legacy code pages --------------------------------------------------------------------------


@dataclass
class Reading:
    """One way of reading the sample: the codecs that read it so, the text, and its faults."""

    codecs: list[str]
    text: str
    broken: list[str]
    chaos: float = 1.0

    @property
    def codec(self) -> str:
        return self.codecs[0]


def _legacy(path: Path, not_utf8: tuple[int, int]) -> str:
    """The one legacy code page whose reading of the file is clean, or an `InputError`.

    `not_utf8` is where the file stopped being UTF-8, for the message when nothing reads it.
    """
    sample = sample_non_ascii(path)
    readings = readings_of(sample)
    clean = [r for r in readings if not r.broken]
    if not clean:
        raise InputError(_no_reading(path, readings, not_utf8))
    pool = [r for r in clean if set(r.codecs) & WESTERN.keys()] or clean
    if any(_RARE_WESTERN.intersection(r.text) for r in pool):
        pool = clean  # Turkish "ş" and Baltic "Š" read as cp1252's Icelandic "þ" and "Ð"
    if len(pool) == 1:
        return pool[0].codec
    _score_chaos(sample, pool)
    cleanest = min(r.chaos for r in pool)
    best = [r for r in pool if r.chaos <= cleanest + _CHAOS_TIE]
    if len(best) > 1:
        # Every clean reading is shown, the messier ones too: the user knows their names.
        raise InputError(_ambiguous(path, pool))
    return best[0].codec


def sample_non_ascii(path: Path) -> bytes:
    """The lines that hold non-ASCII bytes: up to `_LINES_PER_BYTE` for every distinct byte
    value, wherever it is in the file, so one rare letter far down is still looked at."""
    wanted = [_LINES_PER_BYTE] * 256
    lines: dict[int, bytes] = {}  # offset in the file -> the line (or a window of it)
    offset = 0
    carry = b""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                block = carry + chunk
                cut = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1
                if cut == 0 or len(block) - cut > _CHUNK_BYTES:
                    cut = len(block)  # no line end in sight: the window is bounded anyway
                _sample_block(block[:cut], offset, wanted, lines)
                offset += cut
                carry = block[cut:]
            _sample_block(carry, offset, wanted, lines)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return b"\n".join(line for _, line in sorted(lines.items()))


def _sample_block(block: bytes, offset: int, wanted: list[int], lines: dict[int, bytes]) -> None:
    high = block.translate(None, _ASCII)
    for value in set(high):
        needle = bytes((value,))
        at = 0
        while wanted[value] > 0 and (at := block.find(needle, at)) >= 0:
            start, line = _line_around(block, at)
            lines.setdefault(offset + start, line)
            wanted[value] -= 1
            at = start + len(line) + 1


def _line_around(block: bytes, at: int) -> tuple[int, bytes]:
    """The line holding `block[at]`, or a window of a long one cut at ASCII bytes, so that a
    multi-byte character is never split."""
    start = max(block.rfind(b"\n", 0, at), block.rfind(b"\r", 0, at)) + 1
    ends = [i for i in (block.find(b"\n", at), block.find(b"\r", at)) if i >= 0]
    end = min(ends) if ends else len(block)
    if end - start > _LINE_BYTES:
        start = max(start, at - _LINE_BYTES // 2)
        end = min(end, at + _LINE_BYTES // 2)
        while start < at and block[start] >= 0x80:
            start += 1
        while end > at + 1 and block[end - 1] >= 0x80:
            end -= 1
    return start, block[start:end]


def readings_of(sample: bytes) -> list[Reading]:
    """Every candidate's reading of `sample`, those that read it alike merged, in preference
    order."""
    readings: dict[str, Reading] = {}
    for codec in CANDIDATES:
        try:
            text = sample.decode(codec)
        except UnicodeDecodeError:
            continue
        if text in readings:
            readings[text].codecs.append(codec)
        else:
            readings[text] = Reading([codec], text, broken_words(text))
    return list(readings.values())


def _score_chaos(sample: bytes, readings: Iterable[Reading]) -> None:
    """charset-normalizer's mess ratio of each reading (1.0: too messy for it to return)."""
    from charset_normalizer import from_bytes  # deferred: only legacy files need the detector

    pool = list(readings)
    matches = from_bytes(
        sample,
        steps=1,
        chunk_size=max(len(sample), 1),
        threshold=_CHAOS_LIMIT,
        cp_isolation=[codec for r in pool for codec in r.codecs],
        preemptive_behaviour=False,
        enable_fallback=False,
    )
    chaos = {codec: m.chaos for m in matches for codec in m.could_be_from_charset}
    for reading in pool:
        reading.chaos = min((chaos[c] for c in reading.codecs if c in chaos), default=1.0)


# --- the word check -----------------------------------------------------------------------------

# A cell's words: runs between spaces, CSV delimiters and quotes.
_WORD = re.compile(r"[^\s,;|\"]+")
# Marks that may touch a letter: opening ones before it, closing ones and joiners after it.
_OPENING = frozenset("‘“«‹¿¡‚„")
_CLOSING = frozenset("’”»›")
_DASHES = frozenset("–—‐")  # between words, never inside one: cp1252's "–" is Mac Roman's "ñ"
_JOINERS = frozenset("·…®™©°")
_ORDINALS = frozenset("ªº")  # letters that follow digits: "1º", "2ª"
_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "THAI", "CJK"})
_CJK = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH", "HALFWIDTH"})
_MOSTLY_ACCENTED = 0.75


def broken_words(text: str) -> list[str]:
    """The words of `text` that no language writes, in the order they appear."""
    return [word for word in _WORD.findall(text) if not word.isascii() and _is_broken(word)]


def _is_broken(word: str) -> bool:
    has_lower = any(c.islower() for c in word)
    scripts: set[str] = set()
    letters = accented = 0
    for i, char in enumerate(word):
        kind = unicodedata.category(char)
        before = word[i - 1] if i else ""
        after = word[i + 1] if i + 1 < len(word) else ""
        if kind[0] == "C":
            return True  # a control character, or a byte the code page leaves undefined
        if kind[0] == "L":
            letters += 1
            if not char.isascii():
                accented += 1
                if _letter_breaks(char, before, after, has_lower):
                    return True
            script = _script(char)
            if script is not None:
                scripts.add(script)
        elif not char.isascii() and kind[0] != "M" and _mark_breaks(char, before, after):
            return True
    if len(scripts) > 1:
        return True
    return "LATIN" in scripts and letters >= 3 and accented / letters >= _MOSTLY_ACCENTED


def _letter_breaks(char: str, before: str, after: str, has_lower: bool) -> bool:
    """A non-ASCII letter out of place: an upper case one inside a mixed-case word ("JosŽ",
    "MŸller"), a case flip next to it ("OíBrien"), or one glued to a digit ("Ä5")."""
    if char in _ORDINALS:
        return False
    if char.isupper() and before.isalpha() and has_lower:
        return True
    if char.islower() and after.isupper():
        return True
    return before.isdigit() or after.isdigit()


def _mark_breaks(char: str, before: str, after: str) -> bool:
    """A non-ASCII symbol or punctuation mark glued to a letter where no language puts one."""
    if char in _OPENING:
        return before.isalpha()
    if char in _DASHES:
        return before.isalpha() and after.isalpha()
    if char in _CLOSING or char in _JOINERS:
        return False
    return before.isalpha() or after.isalpha()


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    if first in _CJK:
        return "CJK"
    return first if first in _SCRIPTS else None


def _first_difference(pool: list[Reading]) -> tuple[int, list[str]]:
    """The line number (in the sample) and each reading of the first word they disagree on."""
    split = [r.text.split("\n") for r in pool]
    for number, lines in enumerate(zip(*split, strict=False)):
        if len(set(lines)) > 1:
            words = [_WORD.findall(line) for line in lines]
            for group in zip(*words, strict=False):
                if len(set(group)) > 1:
                    return number, list(group)
            return number, list(lines)
    return 0, [r.text[:40] for r in pool]


def _ambiguous(path: Path, pool: list[Reading]) -> str:
    _, words = _first_difference(pool)
    readings = "; ".join(
        f"{describe(r.codec)} reads {word!r}" for r, word in zip(pool, words, strict=False)
    )
    best = pool[0].codec
    return (
        f"{path} is not UTF-8, and batchcall cannot tell which encoding your tool wrote it in: "
        f"{readings}. Nothing was sent. Pass the right one, e.g. --encoding {best}, or save "
        "the sheet as 'CSV UTF-8'."
    )


def _no_reading(path: Path, readings: list[Reading], not_utf8: tuple[int, int]) -> str:
    known = ", ".join(["UTF-16", *CANDIDATES])
    where = f" (byte 0x{not_utf8[1]:02x} at offset {not_utf8[0]} does not decode)"
    example = ""
    if readings and readings[0].broken:
        example = f"; as {readings[0].codec} it would read {readings[0].broken[0]!r}"
    return (
        f"{path} is not UTF-8{where}, nor text in any other encoding batchcall recognises "
        f"({known}){example}. Is it a binary file? If it is text in another encoding, pass "
        "--encoding."
    )
