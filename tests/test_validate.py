"""Row-by-row validation: each row becomes a request or one error code with a sentence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcall._config import Settings
from batchcall._errors import InputError
from batchcall._load import open_table
from batchcall._models import Checked, Contact, CreatePhoneCallRequest, EncodedRequest
from batchcall._validate import Validator, _body_json

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FROM = "+61291234567"
SCRIPT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def check_rows(tmp_path: Path, text: str, **options: object) -> list[Checked]:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    defaults: dict[str, object] = {"from_number": FROM, "script_id": SCRIPT}
    settings = Settings(**{**defaults, **options})  # type: ignore[arg-type]
    table = open_table(path, settings)
    validator = Validator(table, settings, now=NOW)
    return [validator.check(src) for src in table]


def check_one(tmp_path: Path, header: str, line: str, **options: object) -> Checked:
    (checked,) = check_rows(tmp_path, f"{header}\n{line}\n", **options)
    return checked


@pytest.mark.parametrize(
    ("cell", "options", "e164"),
    [
        ("0429 069 971", {}, "+61429069971"),
        ("429069971", {}, "+61429069971"),  # Excel dropped the leading zero
        ("61429069971", {}, "+61429069971"),  # Excel dropped the +
        ("(02) 9876-5432", {}, "+61298765432"),
        ("+1 (202) 555-0143", {}, "+12025550143"),
        ("020 7946 0958", {"region": "gb"}, "+442079460958"),
        ("0429.069.971", {}, "+61429069971"),
    ],
)
def test_phone_is_sent_in_e164(tmp_path: Path, cell: str, options: dict, e164: str) -> None:
    """Phones in the usual written forms become E.164, in --region or else from_number's country."""
    checked = check_one(tmp_path, "phone", f'"{cell}"', **options)
    assert checked.error is None
    assert checked.phone_e164 == e164
    assert checked.request is not None
    assert checked.request.contact.phone_number == e164


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("4.29E+08", "damaged_phone"),
        ("6.14291E+10", "damaged_phone"),
        ("429069971.0", "damaged_phone"),
        ("12345", "invalid_phone"),
        ("1-800-FLOWERS", "invalid_phone"),
        ("0429069971 ext 12", "phone_extension"),
        ("call me", "invalid_phone"),
        ("+999 1234 5678", "invalid_phone"),
    ],
)
def test_bad_phones_get_their_code_and_are_never_guessed(
    tmp_path: Path, cell: str, code: str
) -> None:
    """Excel damage, wrong digits and lettered numbers are reported, not turned into a call."""
    checked = check_one(tmp_path, "phone", cell)
    assert (checked.outcome, checked.error_code, checked.request) == ("invalid", code, None)
    assert cell in (checked.error or "")


def test_national_number_without_any_region_asks_for_a_country_code(tmp_path: Path) -> None:
    """With only per-row from_numbers that lack a country, a national phone is not assumed."""
    (checked,) = check_rows(
        tmp_path, "phone,from_number\n0429069971,+61291234567\n", from_number=None
    )
    assert checked.phone_e164 == "+61429069971"  # the row's from_number gives the region
    (checked,) = check_rows(tmp_path, "phone,from_number\n0429069971,\n", from_number=None)
    assert checked.error_code == "invalid_from_number"


def test_region_comes_from_from_number_when_not_given(tmp_path: Path) -> None:
    """A US from_number makes national numbers American, with no --region."""
    checked = check_one(tmp_path, "phone", "(202) 555-0143", from_number="+1 202 555 0100")
    assert checked.phone_e164 == "+12025550143"
    assert checked.request is not None and checked.request.from_number == "+12025550100"


@pytest.mark.parametrize(
    ("cell", "options", "sent"),
    [
        ("2030-03-02T09:30:00+11:00", {}, "2030-03-01T22:30:00Z"),
        ("2030-03-02 09:30+11:00", {}, "2030-03-01T22:30:00Z"),
        ("2030-03-02T09:30:00Z", {}, "2030-03-02T09:30:00Z"),
        ("2030-03-02 09:30", {"timezone": "Australia/Sydney"}, "2030-03-01T22:30:00Z"),
        ("2030-07-02 09:30:15", {"timezone": "Australia/Sydney"}, "2030-07-01T23:30:15Z"),
        ("02/03/2030 09:30", {"date_format": "%d/%m/%Y %H:%M", "timezone": "UTC"}, None),
    ],
)
def test_scheduled_time_is_sent_in_utc(
    tmp_path: Path, cell: str, options: dict, sent: str | None
) -> None:
    """ISO 8601 with T or space, with or without seconds or offset, and --date-format, go as UTC."""
    checked = check_one(tmp_path, "phone,call time", f"0429069971,{cell}", **options)
    assert checked.error is None
    assert checked.request is not None
    assert checked.request.scheduled_time == (sent or "2030-03-02T09:30:00Z")


def test_row_timezone_column_overrides_the_timezone_option(tmp_path: Path) -> None:
    """Each row's timezone column reads its own naive time; an unknown zone is a row error."""
    rows = check_rows(
        tmp_path,
        "phone,scheduled_time,timezone\n"
        "0429069971,2030-03-02 09:30,Australia/Perth\n"
        "0429069972,2030-03-02 09:30,\n"
        "0429069973,2030-03-02 09:30,Mars/Olympus\n",
        timezone="Australia/Sydney",
    )
    assert [r.request.scheduled_time if r.request else r.error_code for r in rows] == [
        "2030-03-02T01:30:00Z",
        "2030-03-01T22:30:00Z",
        "unknown_timezone",
    ]


@pytest.mark.parametrize(
    ("cell", "code", "hint"),
    [
        ("01/12/2030 09:00", "invalid_scheduled_time", "--date-format"),
        ("next tuesday", "invalid_scheduled_time", "ISO 8601"),
        ("2030-03-02", "invalid_scheduled_time", "no time"),
        ("2030-03-02 09:30", "missing_timezone", "--timezone"),
        ("2020-03-02T09:30:00Z", "past_scheduled_time", "past"),
        ("0001-01-01T00:00:00+01:00", "past_scheduled_time", "past"),
        ("9999-12-31T23:59:59-10:00", "invalid_scheduled_time", "too far"),
    ],
)
def test_bad_times_say_what_to_do(tmp_path: Path, cell: str, code: str, hint: str) -> None:
    """An ambiguous, unreadable, date-only, zone-less or past time names the fix."""
    checked = check_one(tmp_path, "phone,scheduled at", f"0429069971,{cell}")
    assert checked.error_code == code
    assert hint in (checked.error or "")
    assert checked.phone_e164 == "+61429069971"


def test_empty_cells_are_omitted_from_the_request(tmp_path: Path) -> None:
    """Empty names, objects and times are left out of the body, never sent as ""."""
    checked = check_one(
        tmp_path, "phone,first name,last name,policy.number,call time", "0429069971,,,,"
    )
    assert checked.request is not None
    assert checked.request.body() == {
        "from_number": FROM,
        "script_id": SCRIPT,
        "contact": {"phone_number": "+61429069971"},
    }


def test_object_columns_group_by_type_with_names_as_written(tmp_path: Path) -> None:
    """`<type>.<field>` headers fill objects, keeping the server's type and field names."""
    checked = check_one(
        tmp_path, "phone, Policy.Number ,policy.holder,Lead.source", "0429069971,P1,Ann,web"
    )
    assert checked.request is not None
    assert checked.request.objects == {
        "Policy": {"Number": "P1"},
        "policy": {"holder": "Ann"},
        "Lead": {"source": "web"},
    }


def test_per_row_overrides_replace_the_defaults(tmp_path: Path) -> None:
    """from_number and script_id cells win over the options; bad or missing ones are row errors."""
    rows = check_rows(
        tmp_path,
        "phone,from number,script-id\n"
        "0429069971,+61 2 9000 0000,other-script\n"
        "0429069972,,\n"
        "0429069973,12,\n",
    )
    assert rows[0].request is not None
    assert (rows[0].request.from_number, rows[0].request.script_id) == (
        "+61290000000",
        "other-script",
    )
    assert rows[1].request is not None
    assert (rows[1].request.from_number, rows[1].request.script_id) == (FROM, SCRIPT)
    assert rows[2].error_code == "invalid_from_number"
    (missing,) = check_rows(tmp_path, "phone,script_id\n0429069971,\n", script_id=None)
    assert missing.error_code == "missing_script_id"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"from_number": None}, "from_number"),
        ({"script_id": None}, "script_id"),
        ({"from_number": "12"}, "--from-number"),
        ({"timezone": "Sydney"}, "--timezone"),
        ({"region": "XX"}, "--region"),
        ({"date_format": "dd/mm/yyyy"}, "--date-format"),
    ],
)
def test_unusable_settings_stop_before_any_row(tmp_path: Path, options: dict, message: str) -> None:
    """A missing from_number/script_id or a bad option stops the run (exit 2) before any row."""
    with pytest.raises(InputError, match=message) as info:
        check_rows(tmp_path, "phone\n0429069971\n", **options)
    assert info.value.exit_code == 2


def test_calling_window_defers_a_call_to_the_first_allowed_time(tmp_path: Path) -> None:
    """With --calling-window, a 03:00 Sydney call moves into the window and is marked moved."""
    (checked,) = check_rows(
        tmp_path,
        "phone,scheduled_time,timezone\n0429069971,2030-03-05T03:00:00+11:00,Australia/Sydney\n",
        calling_window="au-telemarketing",
    )
    assert checked.error is None
    assert checked.time_moved
    assert checked.request is not None
    assert checked.request.scheduled_time == "2030-03-04T22:00:00Z"  # 09:00 AEDT


def test_calling_window_reject_makes_the_row_invalid(tmp_path: Path) -> None:
    """With --outside-window reject, an out-of-hours row is invalid with the window's code."""
    (checked,) = check_rows(
        tmp_path,
        "phone,scheduled_time\n0429069971,2030-03-05T03:00:00+11:00\n",
        calling_window="au-telemarketing",
        outside_window="reject",
    )
    assert (checked.outcome, checked.error_code) == ("invalid", "outside_calling_window")


def test_requests_are_the_same_as_validated_models(tmp_path: Path) -> None:
    """The requests the validator builds equal pydantic-validated ones field for field, with the
    same JSON body, key order and set fields, so the dispatcher sees ordinary models."""
    rows = check_rows(
        tmp_path,
        "phone,first_name,last_name,policy.number,call time\n"
        "0429069971,Ann,Lee,P1,2030-03-02T09:30:00Z\n"
        "0429069972,,,,\n"
        "0429069973,Bob,,P3,\n",
    )
    for checked in rows:
        built = checked.request
        assert built is not None
        validated = CreatePhoneCallRequest.model_validate(built.body())
        assert built == validated
        assert built.model_dump_json(exclude_none=True) == validated.model_dump_json(
            exclude_none=True
        )
        assert built.model_fields_set == validated.model_fields_set
        assert built.contact.model_fields_set == validated.contact.model_fields_set
        assert built.model_dump() == validated.model_dump()


_texts = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    from_number=_texts.filter(bool),
    script_id=_texts.filter(bool),
    phone=_texts.filter(bool),
    first=_texts,
    last=_texts,
    objects=st.dictionaries(_texts, st.dictionaries(_texts, _texts.filter(bool), max_size=3)),
    sent=st.none() | _texts,
)
def test_the_body_written_directly_is_the_models_json(
    from_number, script_id, phone, first, last, objects, sent
):
    """The body the validator writes as text is, character for character, what pydantic dumps
    of the same request: escapes (quotes, backslashes, control characters), non-ASCII kept,
    empty names and no objects left out, key order."""
    objects = {kind: fields for kind, fields in objects.items() if fields}
    text = _body_json(from_number, script_id, phone, first, last, objects, sent)
    model = CreatePhoneCallRequest(
        from_number=from_number,
        script_id=script_id,
        contact=Contact(phone_number=phone, first_name=first or None, last_name=last or None),
        objects=objects or None,
        scheduled_time=sent,
    )
    assert text == model.model_dump_json(exclude_none=True)
    assert EncodedRequest(text, script_id, sent) == model
