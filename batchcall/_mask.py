"""Phone numbers as a shared report shows them: enough to recognise a row, not to call it.

`mask_phone("+61429069971")` is `+61 4•• ••• 971`: the country code, the first digit of the
national number and its last three. `mask_text` does the same to every phone-like run of
digits in a message (an error that quotes the cell it read, say).
"""

from __future__ import annotations

import re

import phonenumbers

DOT = "•"
# Runs of digits with the separators people type in phone numbers; dates and clock times
# (`2030-03-04 14:00`) are left alone by `_looks_like_date`.
_RUN = re.compile(r"\+?\d[\d ().\-/]*\d")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}:\d{2}")
_KEEP_LAST = 3


def mask_phone(e164: str | None) -> str:
    """A number in its international format with its middle digits dotted out."""
    if not e164:
        return ""
    try:
        shown = phonenumbers.format_number(
            phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
    except phonenumbers.NumberParseException:
        return _dots(e164, keep_first=1)
    country, _, national = shown.partition(" ")
    if not national:
        return _dots(shown, keep_first=2)
    return f"{country} {_dots(national, keep_first=1)}"


def mask_text(text: str | None) -> str:
    """`text` with each run of five or more digits (a phone, typed any way) dotted out."""
    if not text:
        return ""
    return _RUN.sub(_mask_run, text)


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = sum(c.isdigit() for c in run)
    if digits < 5 or _DATE.match(run):
        return run
    return _dots(run, keep_first=0)


def _dots(text: str, *, keep_first: int) -> str:
    """Every digit but the first `keep_first` and the last three replaced by a dot."""
    total = sum(c.isdigit() for c in text)
    keep_last = min(_KEEP_LAST, max(0, total - keep_first - 2))
    out, seen = [], 0
    for c in text:
        if c.isdigit():
            seen += 1
            if keep_first < seen <= total - keep_last:
                c = DOT
        out.append(c)
    return "".join(out)
