"""Turn each `SourceRow` into a request or one error code with a sentence; no row stops another.

The Validator does every per-setting piece of work once, in `__init__` (zones, regions, the
calling-window policy), so `check` is a short run of string tests plus one phonenumbers parse,
the hot spot of a million-row file. A request is written straight as its JSON body
(`EncodedRequest`): every value has already been checked here, and building a pydantic model
per row, let alone validating one, would cost about as much as the parse.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from ._config import Settings
from ._errors import InputError
from ._jsontext import encoder
from ._load import Table
from ._models import Checked, EncodedRequest, SourceRow
from ._zones import ZONE_CELL, UnknownZone, parse_zone

_E164 = phonenumbers.PhoneNumberFormat.E164
# Excel damage: `4.29E+08` (a number shown in scientific notation) or `429069971.5` (a fraction).
_DAMAGED = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+|\+?\d+[.,]\d+")
# What a phone cell may hold. Letters are refused: phonenumbers would read `1-800-FLOWERS` or an
# `ext.` and dial something the sheet did not spell out.
_PHONE_CHARS = re.compile(r"[0-9+()\-./\s]+")
# A cell a CRM filled with several numbers: Google's " ::: ", a comma, semicolon, bar, slash or
# line break between them. Each part must be number-like (`_NUMBER_DIGITS` digits or more),
# so "089/123456" (a slash inside one number) stays one number.
_MULTI_SEPARATOR = re.compile(r"\s*(?::::|[,;|/\n\r])\s*")
_NUMBER_DIGITS = 6
# A number followed by an extension: "x123", "ext. 5", RFC 3966's ";ext=5", "#5".
_EXTENSION = re.compile(
    r"(?P<number>.*?\d[\s)]*?)\s*(?:[,;]?\s*(?:ext(?:ension|n)?\.?|x)\s*:?|;ext=|#)\s*"
    r"(?P<ext>\d{1,7})",
    re.IGNORECASE,
)
_SLASH_DATE = re.compile(r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b")
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_ISO_EXAMPLE = "2030-03-02 09:30 or 2030-03-02T09:30:00+10:00"
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NO_TIME: tuple[None, None, None] = (None, None, None)
_Problem = tuple[str, str]  # a row error: (code, message)


class Validator:
    """Checks rows of one table under one set of settings, with `now` as the present instant."""

    def __init__(self, table: Table, settings: Settings, *, now: datetime) -> None:
        self.table = table
        self.now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        self.date_format = settings.date_format
        if self.date_format is not None and "%" not in self.date_format:
            raise InputError(
                f"--date-format {self.date_format!r} has no % directive; write it the way "
                "Python's strptime does, e.g. '%d/%m/%Y %H:%M'."
            )
        if self.date_format is not None:
            _check_date_format(self.date_format)
        self.zone = _settings_zone(settings.timezone)
        self.region = _settings_region(settings.region)

        fields = table.fields
        self._phone_at = fields["phone_number"]
        self._first_at = fields.get("first_name")
        self._last_at = fields.get("last_name")
        self._time_at = fields.get("scheduled_time")
        self._zone_at = fields.get("timezone")
        self._state_at = fields.get("state")
        self._zip_at = fields.get("zip")
        self._from_at = fields.get("from_number")
        self._script_at = fields.get("script_id")
        self._objects = sorted(table.objects.items(), key=lambda item: item[1])

        if settings.from_number is None and self._from_at is None:
            raise InputError(
                "No from_number: pass --from-number +E164 (a number of your team), set "
                "from_number in batchcall.toml, or add a from_number column."
            )
        if settings.script_id is None and self._script_at is None:
            raise InputError(
                "No script_id: pass --script-id ID, set script_id in batchcall.toml, or add a "
                "script_id column."
            )
        self.from_number: str | None = None
        if settings.from_number is not None:
            parsed = _parse_from_number(settings.from_number, self.region)
            if parsed is None:
                raise InputError(
                    f"--from-number {settings.from_number!r} is not a valid phone number; "
                    "write it in E.164, e.g. +61291234567."
                )
            self.from_number = parsed
        self.script_id = (settings.script_id or "").strip() or None
        self.policy = _window_policy(settings)
        self.first_of_many = settings.multi_phone == "first"
        # Campaign files repeat a handful of times over thousands of rows, and `now` is fixed
        # for this validator, so a time cell's answer is worked out once.
        self._when = lru_cache(maxsize=65536)(self._when_uncached)

    # --- one row ------------------------------------------------------------------------------

    def check(self, src: SourceRow) -> Checked:
        cells = src.cells
        from_number, problem = self._row_from_number(cells)
        if problem is not None:
            return _invalid(src, *problem)
        assert from_number is not None
        phone, problem = self._phone(cells[self._phone_at], from_number)
        if problem is not None:
            return _invalid(src, *problem)
        assert phone is not None
        script_id = self.script_id
        if self._script_at is not None and cells[self._script_at]:
            script_id = cells[self._script_at]
        if script_id is None:
            return _invalid(
                src,
                "missing_script_id",
                "This row has no script_id; fill its script_id cell or pass --script-id.",
                phone,
            )
        sent, moved, problem, rule = self._timing(cells, phone)
        if problem is not None:
            return _invalid(src, *problem, phone, rule)
        request = self._request(cells, from_number, script_id, phone, sent)
        # Positional: keywords cost a row 0.3 µs more.
        raw = src.raw or cells
        return Checked(src.row, raw, request, phone, None, None, "pending", moved, rule)

    def _row_from_number(self, cells: tuple[str, ...]) -> tuple[str | None, _Problem | None]:
        """The row's own from_number cell, else --from-number."""
        if self._from_at is not None and cells[self._from_at]:
            parsed = _parse_from_number(cells[self._from_at], self.region)
            if parsed is None:
                return None, (
                    "invalid_from_number",
                    f"from_number {cells[self._from_at]!r} is not a valid phone number; write "
                    "it in E.164 (e.g. +61291234567) or leave it empty to use --from-number.",
                )
            return parsed, None
        if self.from_number is None:
            return None, (
                "invalid_from_number",
                "This row has no from_number; fill its from_number cell or pass --from-number.",
            )
        return self.from_number, None

    def _timing(
        self, cells: tuple[str, ...], phone: str
    ) -> tuple[str | None, bool, _Problem | None, str | None]:
        """The time as sent (UTC "...Z", None: now), whether a calling window moved it, any
        problem, and the window's rule that moved or refused it."""
        row_zone_name = cells[self._zone_at] if self._zone_at is not None else ""
        raw_time = cells[self._time_at] if self._time_at is not None else ""
        when, sent, problem = self._when(raw_time, row_zone_name) if raw_time else _NO_TIME
        if problem is not None or self.policy is None:
            return sent, False, problem, None
        row_state = cells[self._state_at] if self._state_at is not None else None
        row_zip = cells[self._zip_at] if self._zip_at is not None else None
        placement = self.policy.place(
            when,
            phone_e164=phone,
            row_timezone=row_zone_name or None,
            row_state=row_state or None,
            row_zip=row_zip or None,
            now=self.now,
        )
        if placement.error_code is not None:
            return None, False, (placement.error_code, placement.error or ""), placement.rule
        if placement.moved:
            moved_to = placement.when
            sent = moved_to.astimezone(UTC).strftime(_UTC_FORMAT) if moved_to is not None else None
        return sent, placement.moved, None, placement.rule

    def _request(
        self, cells: tuple[str, ...], from_number: str, script_id: str, phone: str, sent: str | None
    ) -> EncodedRequest:
        first = cells[self._first_at] if self._first_at is not None else ""
        last = cells[self._last_at] if self._last_at is not None else ""
        objects: dict[str, dict[str, Any]] = {}
        for (type_, name), index in self._objects:
            if cells[index]:
                objects.setdefault(type_, {})[name] = cells[index]
        body = _body_json(from_number, script_id, phone, first, last, objects, sent)
        return EncodedRequest(body, script_id, sent)

    def _phone(self, raw: str, from_number: str) -> tuple[str | None, _Problem | None]:
        return _normalise_phone(
            raw, self.region or _region_of(from_number), first_of_many=self.first_of_many
        )

    def _when_uncached(
        self, raw: str, zone_name: str
    ) -> tuple[datetime | None, str | None, tuple[str, str] | None]:
        """The UTC instant of a time cell and its text as sent, or the row's error."""
        parsed, problem = _parse_time(raw, self.date_format)
        if problem is not None:
            return _time_error("invalid_scheduled_time", problem)
        assert parsed is not None
        if parsed.tzinfo is None:
            zone = self.zone
            if zone_name:
                try:
                    zone = parse_zone(zone_name, source=ZONE_CELL)
                except UnknownZone as exc:
                    return _time_error("unknown_timezone", str(exc))
            if zone is None:
                return _time_error(
                    "missing_timezone",
                    f"Time {raw!r} has no UTC offset and no time zone to read it in; add an offset "
                    "(e.g. +10:00), a timezone column, or pass --timezone.",
                )
            parsed = parsed.replace(tzinfo=zone)
        if parsed < self.now:
            return _time_error(
                "past_scheduled_time",
                f"Time {raw!r} is in the past; give a future time, or clear the cell to call now.",
            )
        try:
            when = parsed.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59-10:00 is past the end of the calendar in UTC
            return _time_error("invalid_scheduled_time", f"Time {raw!r} is too far in the future.")
        return when, when.strftime(_UTC_FORMAT), None


def _normalise_phone(
    raw: str, region: str | None, *, first_of_many: bool = False
) -> tuple[str | None, _Problem | None]:
    """The E.164 form of a phone cell, or its row error.

    The fast path is one parse of a cell of phone characters. Only a cell that fails it is
    looked at again for an extension or several numbers (`_unusual_phone`), so valid rows pay
    nothing for those checks.
    """
    if not raw:
        return None, ("missing_phone", "The phone cell is empty; fill it or delete the row.")
    if _DAMAGED.fullmatch(raw):
        return None, (
            "damaged_phone",
            f"Phone {raw!r} looks like a number Excel damaged (scientific notation or a "
            "fraction), so its digits are lost; retype it, and format the column as Text.",
        )
    if _PHONE_CHARS.fullmatch(raw):
        e164 = _e164(raw, region)
        if e164 is not None:
            return e164, None
    return _unusual_phone(raw, region, first_of_many)


def _e164(raw: str, region: str | None) -> str | None:
    fast = _fast_e164(raw, region)
    if fast is not _UNSURE:
        return fast
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not is_valid_number(number):
        return None
    return phonenumbers.format_number(number, _E164)


def _unusual_phone(
    raw: str, region: str | None, first_of_many: bool
) -> tuple[str | None, _Problem | None]:
    """The error of a phone cell that is not one plain valid number, or with --multi-phone
    first, the first valid number of several."""
    extension = _EXTENSION.fullmatch(raw)
    if extension is not None and _PHONE_CHARS.fullmatch(extension["number"]):
        base = _e164(extension["number"], region)
        if base is not None:
            return None, (
                "phone_extension",
                f"Phone {raw!r} carries extension {extension['ext']}, which the API cannot "
                f"dial; it would ring {base} only. Move the extension to another column, or "
                "give the person's direct number.",
            )
    parts = [part for part in _MULTI_SEPARATOR.split(raw) if part]
    if len(parts) > 1 and all(_number_like(part) for part in parts):
        return _several(raw, parts, region, first_of_many)
    if not _PHONE_CHARS.fullmatch(raw):
        letters = "; letters cannot be dialled" if any(c.isalpha() for c in raw) else ""
        return None, (
            "invalid_phone",
            f"Phone {raw!r} is not a phone number: it may hold only digits, spaces, "
            f"+ ( ) - . /{letters}.",
        )
    if region is None and not raw.startswith("+"):
        hint = "write it with its country code (+CC …) or pass --region"
    else:
        hint = f"check its digits (read with default region {region})"
    return None, ("invalid_phone", f"Phone {raw!r} is not a valid number; {hint}.")


def _number_like(part: str) -> bool:
    return bool(_PHONE_CHARS.fullmatch(part)) and sum(c.isdigit() for c in part) >= _NUMBER_DIGITS


def _several(
    raw: str, parts: list[str], region: str | None, first_of_many: bool
) -> tuple[str | None, _Problem | None]:
    valid = [e164 for part in parts if (e164 := _e164(part, region)) is not None]
    listed = ", ".join(repr(part) for part in parts)
    if first_of_many and valid:
        return valid[0], None
    if first_of_many:
        return None, (
            "invalid_phone",
            f"Phone cell {raw!r} holds {len(parts)} numbers ({listed}), and none is valid.",
        )
    if valid:
        advice = f"Keep one in the cell, or pass --multi-phone first to call {valid[0]}."
    else:
        advice = "None of them is a valid number."
    return None, (
        "multiple_phones",
        f"Phone cell {raw!r} holds {len(parts)} numbers ({listed}); a row calls one. {advice}",
    )


# --- phone parsing, fast ----------------------------------------------------------------------

# phonenumbers.parse is most of a row's cost. Most cells are one of two plain shapes: `+CC ...`,
# or a national number behind its region's trunk prefix `0` (`0412 345 678`). For those, the
# parse reduces to digit picking, done here when every condition under which phonenumbers would
# do anything more is ruled out; any other cell (or doubt) goes to phonenumbers.
# tests/test_validate_phones.py holds this to phonenumbers on every example number of every
# region, in every format, and on random digit strings.
_UNSURE: Any = object()
_LAYOUT = str.maketrans("", "", " ().-")
_MAX_NSN = 17  # phonenumbers' longest national number


def _fast_e164(raw: str, region: str | None) -> str | None:
    """The E.164 form of `raw` or None (invalid), exactly as phonenumbers would say; `_UNSURE`
    when it cannot be sure."""
    digits = raw.translate(_LAYOUT)
    international = digits[:1] == "+"
    if international:
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_NSN + 3:
        return _UNSURE
    if international:
        for size in (1, 2, 3):
            code = int(digits[:size])
            if digits[0] != "0" and code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                return _valid_e164(code, digits[size:], None)
        return _UNSURE
    if region is None:
        return _UNSURE
    trunk = _trunk_rule(region)
    if trunk is None or not digits.startswith("0"):
        return _UNSURE
    code, parsing, idd, general = trunk
    prefix = parsing.match(digits)
    # Only a bare 0 is stripped here (no carrier code), and only from a number that is not
    # valid with it; an international call prefix is phonenumbers' to read.
    if prefix is None or prefix.end() != 1 or any(prefix.groups()):
        return _UNSURE
    if idd.match(digits) or general.fullmatch(digits):
        return _UNSURE
    return _valid_e164(code, digits[1:], region)


def _valid_e164(code: int, national: str, region: str | None) -> str | None:
    # A leading zero (Italy keeps one) or a trunk prefix to strip: phonenumbers' own rules.
    if not 2 <= len(national) <= _MAX_NSN or national[0] == "0":
        return _UNSURE
    if region is None and _strips_trunk(code, national):
        return _UNSURE
    if region is not None and len(national) not in _possible_lengths(region):
        return _UNSURE  # phonenumbers would keep the 0 and judge that
    return f"+{code}{national}" if _valid_nsn(code, national) else None


@lru_cache(maxsize=1024)
def _strips_trunk_rule(code: int) -> re.Pattern[str] | None:
    main = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, main)
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing or metadata.national_prefix
    return re.compile(prefix) if prefix else None


def _strips_trunk(code: int, national: str) -> bool:
    """Whether phonenumbers could strip a national prefix from an international number."""
    rule = _strips_trunk_rule(code)
    return rule is not None and rule.match(national) is not None


@lru_cache(maxsize=256)
def _trunk_rule(
    region: str,
) -> tuple[int, re.Pattern[str], re.Pattern[str], re.Pattern[str]] | None:
    """For a region whose trunk prefix is `0` with no transform rule: its calling code, its
    national-prefix-for-parsing and international prefix patterns, and its general pattern."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.country_code is None:
        return None
    parsing = metadata.national_prefix_for_parsing
    if metadata.national_prefix != "0" or not parsing:
        return None
    if metadata.national_prefix_transform_rule or not metadata.international_prefix:
        return None
    general = metadata.general_desc
    pattern = general.national_number_pattern if general is not None else None
    if not pattern:
        return None
    return (
        metadata.country_code,
        re.compile(parsing),
        re.compile(metadata.international_prefix),
        re.compile(pattern),
    )


@lru_cache(maxsize=256)
def _possible_lengths(region: str) -> frozenset[int]:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    general = metadata.general_desc if metadata is not None else None
    if general is None:
        return frozenset()
    # A local-only length keeps phonenumbers from stripping the trunk prefix.
    return frozenset(general.possible_length or ()) - set(general.possible_length_local_only or ())


# --- phone validity, fast ---------------------------------------------------------------------

# The number-type descriptions, most common first. A number is valid when it matches its region's
# general description and any one of these; phonenumbers.is_valid_number asks the same question
# but classifies the number fully (every description, rare ones first) and, for a calling code
# shared by several regions (+61 with CC and CX, +1, +7, +44), does that twice. Stopping at the
# first match, with compiled patterns kept (see `_matches`), measured 5x faster on AU mobiles.
# tests/test_validate_phones.py holds this to phonenumbers.is_valid_number.
_DESCRIPTIONS = (
    "mobile",
    "fixed_line",
    "toll_free",
    "voip",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


def is_valid_number(number: phonenumbers.PhoneNumber) -> bool:
    """The same answer as `phonenumbers.is_valid_number`, reached sooner."""
    code = number.country_code
    if code is None:
        return False
    return _valid_nsn(code, phonenumbers.national_significant_number(number))


def _valid_nsn(code: int, nsn: str) -> bool:
    """Whether national significant number `nsn` is valid under calling code `code`."""
    regions = _regions(code)
    if not regions:
        return False
    if len(regions) == 1:
        return _matches_metadata(nsn, regions[0][0])
    # As phonenumbers picks the region of a shared calling code: the first whose leading digits
    # match, or else the first the number is valid in.
    for metadata, leading in regions:
        if leading is not None:
            if leading.match(nsn):
                return _matches_metadata(nsn, metadata)
        elif _matches_metadata(nsn, metadata):
            return True
    return False


@lru_cache(maxsize=1024)
def _regions(code: int) -> tuple[tuple[Any, re.Pattern[str] | None], ...]:
    """A calling code's regions' metadata, as `is_valid_number` looks them up, with their
    leading-digits patterns compiled (looked up once, not per number)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return ()
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0].upper())
        return () if metadata is None else ((metadata, None),)
    found = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is not None:
            leading = metadata.leading_digits
            found.append((metadata, None if leading is None else _compiled(leading)))
    return tuple(found)


def _matches_metadata(nsn: str, metadata: Any) -> bool:
    general, descriptions = _patterns(metadata)
    if not _fits(nsn, general):
        return False
    return any(_fits(nsn, desc) for desc in descriptions)


_Pattern = tuple[frozenset[int], re.Pattern[str]]
_PATTERNS: dict[int, tuple[_Pattern | None, tuple[_Pattern, ...]]] = {}


def _patterns(metadata: Any) -> tuple[_Pattern | None, tuple[_Pattern, ...]]:
    # phonenumbers' own matcher looks its pattern up in re's cache on every call, which is most
    # of the cost of a validity check; the compiled patterns are kept here instead, by the
    # metadata object (phonenumbers keeps one per region for the life of the process).
    found = _PATTERNS.get(id(metadata))
    if found is None:
        general = _pattern(metadata.general_desc)
        descriptions = tuple(
            p for d in _DESCRIPTIONS if (p := _pattern(getattr(metadata, d))) is not None
        )
        found = _PATTERNS[id(metadata)] = (general, descriptions)
    return found


def _pattern(desc: Any) -> _Pattern | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), _compiled(desc.national_number_pattern)


def _fits(nsn: str, pattern: _Pattern | None) -> bool:
    if pattern is None:
        return False
    lengths, compiled = pattern
    if lengths and len(nsn) not in lengths:
        return False
    return compiled.fullmatch(nsn) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --- helpers ------------------------------------------------------------------------------------


_text = json.encoder.encode_basestring  # a JSON string, non-ASCII kept, as pydantic writes it
_OBJECTS_JSON = encoder(item_separator=",", key_separator=":")


@lru_cache(maxsize=1024)
def _body_head(from_number: str, script_id: str) -> str:
    return f'{{"from_number":{_text(from_number)},"script_id":{_text(script_id)},"contact":{{'


def _body_json(
    from_number: str,
    script_id: str,
    phone: str,
    first: str,
    last: str,
    objects: dict[str, dict[str, Any]],
    sent: str | None,
) -> str:
    """`CreatePhoneCallRequest(...).model_dump_json(exclude_none=True)` of values already
    checked, written directly: the fields in the model's order, an empty name or no objects
    or time left out, strings escaped as pydantic escapes them. A fifth of the cost of building
    and dumping the model; tests/test_validate.py holds the two to the same text."""
    parts = [_body_head(from_number, script_id), '"phone_number":', _text(phone)]
    if first:
        parts += (',"first_name":', _text(first))
    if last:
        parts += (',"last_name":', _text(last))
    parts.append("}")
    if objects:
        parts += (',"objects":', _OBJECTS_JSON(objects))
    if sent is not None:
        parts += (',"scheduled_time":', _text(sent))
    parts.append("}")
    return "".join(parts)


def _time_error(code: str, error: str) -> tuple[None, None, tuple[str, str]]:
    return None, None, (code, error)


def _invalid(
    src: SourceRow, code: str, error: str, phone: str | None = None, rule: str | None = None
) -> Checked:
    return Checked(
        row=src.row,
        cells=src.raw or src.cells,
        phone_e164=phone,
        error_code=code,
        error=error,
        outcome="invalid",
        window_rule=rule,
    )


def _check_date_format(date_format: str) -> None:
    # strptime judges the format only when it parses a value; without this check a typo such
    # as %Q would make every row's time invalid instead of stopping the run once.
    try:
        datetime.strptime("", date_format)
    except ValueError as exc:
        if "directive" in str(exc) or "stray %" in str(exc):
            raise InputError(
                f"--date-format {date_format!r} is not a strptime format ({exc}); write it "
                "e.g. '%d/%m/%Y %H:%M'."
            ) from exc


def _parse_time(raw: str, date_format: str | None) -> tuple[datetime | None, str | None]:
    if date_format is not None:
        try:
            return datetime.strptime(raw, date_format), None
        except ValueError:
            pass
    if _DATE_ONLY.fullmatch(raw):
        return None, f"Time {raw!r} has a date but no time; write it as {_ISO_EXAMPLE}."
    try:
        return datetime.fromisoformat(raw), None
    except ValueError:
        pass
    if _SLASH_DATE.match(raw) and date_format is None:
        return None, (
            f"Time {raw!r} is ambiguous (day/month or month/day?); pass --date-format, e.g. "
            f"'%d/%m/%Y %H:%M' or '%m/%d/%Y %H:%M', or write it as {_ISO_EXAMPLE}."
        )
    expected = f"--date-format {date_format!r} nor ISO 8601" if date_format else "ISO 8601"
    return None, (
        f"Time {raw!r} is not a date and time in {expected}; write it as {_ISO_EXAMPLE}"
        + ("." if date_format else ", or pass --date-format.")
    )


@lru_cache(maxsize=256)
def _region_of(from_number: str) -> str | None:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(from_number, None))
    except phonenumbers.NumberParseException:
        return None
    return None if region in (None, "ZZ", "001") else region


@lru_cache(maxsize=256)
def _parse_from_number(raw: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not is_valid_number(number):
        return None
    return phonenumbers.format_number(number, _E164)


def _settings_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return parse_zone(name, source="--timezone")
    except UnknownZone as exc:
        raise InputError(str(exc)) from None


def _settings_region(region: str | None) -> str | None:
    if not region:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InputError(
            f"--region {region!r} is not a region phonenumbers knows; use a two-letter "
            "country code such as AU, GB or US."
        )
    return code


def _window_policy(settings: Settings) -> Any:
    """The calling-window policy, when one is asked for (see `batchcall.windows`)."""
    if not settings.calling_window:
        return None
    from ._windows import WindowPolicy  # deferred: only runs with a calling window need it

    return WindowPolicy.from_settings(settings)
