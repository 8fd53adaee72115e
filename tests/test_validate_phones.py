"""The validator's fast phone validity check gives phonenumbers' own answer, for every region."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcall._validate import is_valid_number


def _examples() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(example)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(example)
    return numbers


def _variants(number: phonenumbers.PhoneNumber) -> list[phonenumbers.PhoneNumber]:
    digits = str(number.national_number)
    forms = {digits, digits[:-1], digits + "0", "9" + digits[1:], digits[:-2] + "99"}
    return [
        phonenumbers.PhoneNumber(country_code=number.country_code, national_number=int(f))
        for f in forms
        if f
    ]


def test_fast_validity_agrees_on_every_example_number_and_near_miss() -> None:
    """Every example number phonenumbers ships, and its one-digit-off neighbours, get the same
    valid/invalid verdict, so no number is sent that phonenumbers would call invalid."""
    checked = 0
    for example in _examples():
        for number in _variants(example):
            assert is_valid_number(number) == phonenumbers.is_valid_number(number), number
            checked += 1
    assert checked > 3000


EXAMPLES = _examples()


@settings(max_examples=500, deadline=None)
@given(
    example=st.sampled_from(EXAMPLES),
    keep=st.integers(min_value=0, max_value=12),
    tail=st.integers(min_value=0, max_value=10**10),
)
def test_fast_validity_agrees_on_numbers_near_real_ones(
    example: phonenumbers.PhoneNumber, keep: int, tail: int
) -> None:
    """A real number's leading digits with random ones after them, valid or not, get
    phonenumbers' own verdict."""
    digits = str(example.national_number)[:keep] + str(tail)
    number = phonenumbers.PhoneNumber(
        country_code=example.country_code, national_number=int(digits)
    )
    assert is_valid_number(number) == phonenumbers.is_valid_number(number)


def _slow_e164(raw: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_the_fast_parse_agrees_with_phonenumbers_on_every_example_in_every_format() -> None:
    """Every example number of every region, a digit off either way, written as E.164,
    international and national, read in its own region and in others: the fast parse gives
    phonenumbers' answer, or leaves the cell to phonenumbers."""
    from batchcall._validate import _UNSURE, _fast_e164

    formats = (
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    )
    answered = 0
    for example in _examples():
        own = phonenumbers.region_code_for_number(example)
        for number in [example, *_variants(example)]:
            for form in formats:
                raw = phonenumbers.format_number(number, form)
                for region in {own, "AU", "GB", "DE", "US", None}:
                    if region == "001":
                        continue
                    fast = _fast_e164(raw, region)
                    if fast is not _UNSURE:
                        answered += 1
                        assert fast == _slow_e164(raw, region), (raw, region)
    assert answered > 5000  # the fast path is taken, not only ever deferred


@settings(max_examples=3000, deadline=None)
@given(
    raw=st.from_regex(r"\A\+?0{0,2}[0-9 ().-]{0,18}\Z"),
    region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
)
def test_the_fast_parse_agrees_with_phonenumbers_on_any_digits(raw: str, region: str) -> None:
    from batchcall._validate import _UNSURE, _fast_e164

    fast = _fast_e164(raw, region)
    if fast is not _UNSURE:
        assert fast == _slow_e164(raw, region)
