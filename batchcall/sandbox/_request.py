"""Checking a create-phone-call body the way the API does: strict on types, lenient on extras.

The OpenAPI document does not forbid unknown properties, so they are ignored; but every
documented property must have its documented type, required strings must not be empty, phone
numbers must be real numbers (national Australian format, as in the spec's example, or E.164),
and `scheduled_time` must be an RFC 3339 date-time with an offset.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import phonenumbers

from ._store import NewCall

DEFAULT_REGION = "AU"

# RFC 3339 `date-time`, which OpenAPI's `format: date-time` means: the offset is required.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class BadRequest(Exception):
    """The body cannot be accepted; the message is sent back as the 400's `message`."""


def e164(value: str) -> str | None:
    """The number in E.164 if phonenumbers finds it valid (region AU by default), else None."""
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _string(container: dict[str, Any], name: str, where: str, *, required: bool) -> str | None:
    if name not in container:
        if required:
            raise BadRequest(f"{where}{name} is required")
        return None
    value = container[name]
    if not isinstance(value, str):
        raise BadRequest(f"{where}{name} must be a string")
    if required and not value.strip():
        raise BadRequest(f"{where}{name} must not be empty")
    return value


def _scheduled_time(value: str | None) -> str | None:
    if value is None:
        return None
    problem = (
        f"scheduled_time must be an ISO 8601 date-time with an offset, "
        f"such as 2026-02-25T09:00:00Z; got {value!r}"
    )
    if not _DATE_TIME.match(value):
        raise BadRequest(problem)
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        raise BadRequest(problem) from None
    return value


def _objects(body: dict[str, Any]) -> dict[str, Any] | None:
    if "objects" not in body:
        return None
    objects = body["objects"]
    if not isinstance(objects, dict):
        raise BadRequest("objects must be an object keyed by object type")
    for name, value in objects.items():
        if not isinstance(value, dict):
            raise BadRequest(f"objects.{name} must be an object of field values")
    return objects


def parse_body(raw: bytes) -> tuple[dict[str, Any], NewCall]:
    """The decoded JSON and the normalised call it asks for; raises BadRequest with a reason."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    from_number = _string(body, "from_number", "", required=True)
    script_id = _string(body, "script_id", "", required=True)
    if "contact" not in body:
        raise BadRequest("contact is required")
    contact = body["contact"]
    if not isinstance(contact, dict):
        raise BadRequest("contact must be an object")
    phone = _string(contact, "phone_number", "contact.", required=True)
    first_name = _string(contact, "first_name", "contact.", required=False)
    last_name = _string(contact, "last_name", "contact.", required=False)
    objects = _objects(body)
    scheduled_time = _scheduled_time(_string(body, "scheduled_time", "", required=False))
    assert from_number is not None and script_id is not None and phone is not None
    phone_e164 = e164(phone)
    if phone_e164 is None:
        raise BadRequest(f"contact.phone_number is not a valid phone number: {phone!r}")
    from_e164 = e164(from_number)
    if from_e164 is None:
        raise BadRequest(f"from_number is not a valid phone number: {from_number!r}")
    call = NewCall(
        phone_number=phone_e164,
        from_number=from_e164,
        script_id=script_id,
        first_name=first_name,
        last_name=last_name,
        objects=objects,
        scheduled_time=scheduled_time,
    )
    return body, call


def fingerprint(body: dict[str, Any]) -> str:
    """A canonical form of a body, so a replay with reordered keys still counts as the same."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
