"""pydantic models that mirror the API (`sandbox/openapi.yaml`), and the records between stages.

The API models forbid extra fields, so nothing outside the spec can ever be sent, and they are
dumped with `exclude_none=True`, so an empty cell is omitted instead of being sent as "".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._journal import PlannedState


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None


class CreatePhoneCallRequest(BaseModel):
    """Body of `POST /api/v1/create-phone-call`."""

    model_config = ConfigDict(extra="forbid")

    from_number: str = Field(min_length=1)
    script_id: str = Field(min_length=1)
    contact: Contact
    objects: dict[str, dict[str, Any]] | None = None
    scheduled_time: str | None = None  # ISO 8601 in UTC, "...Z"

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EncodedRequest:
    """A request the validator checked, kept as the JSON body that is sent and journalled.

    A million-row file builds a million requests, and a pydantic object apiece, dumped to JSON
    at once, cost 5 µs a row; the body is written as text instead (`_validate._body_json`).
    The call key's fields are kept beside it. Anything else of the model (`contact`, `objects`,
    `from_number`) is read from a model validated from the body when asked, so tests and
    callers see ordinary values; it equals the model it was built from."""

    __slots__ = ("json", "scheduled_time", "script_id")

    def __init__(self, json: str, script_id: str, scheduled_time: str | None) -> None:
        self.json = json
        self.script_id = script_id
        self.scheduled_time = scheduled_time

    def model(self) -> CreatePhoneCallRequest:
        return CreatePhoneCallRequest.model_validate_json(self.json)

    def model_dump_json(self, *, exclude_none: bool = True) -> str:
        return self.json if exclude_none else self.model().model_dump_json()

    def body(self) -> dict[str, Any]:
        return self.model().body()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like ask for these: not the model's
            raise AttributeError(name)
        return getattr(self.model(), name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedRequest):
            return self.json == other.json
        if isinstance(other, CreatePhoneCallRequest):
            return self.model() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a model, which is unhashable

    def __repr__(self) -> str:
        return f"EncodedRequest({self.json!r})"


class CreateCallResponse(BaseModel):
    """The 201 answer. Unknown extra fields from the server are tolerated, not required."""

    model_config = ConfigDict(extra="ignore")

    success: bool
    call_id: str
    contact_id: str
    status: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    success: bool
    message: str


# --- records that flow between stages -------------------------------------------------------

# Columns the report adds to the input's own columns, in this order.
RESULT_COLUMNS: tuple[str, ...] = (
    "row",
    "outcome",
    "call_id",
    "contact_id",
    "http_status",
    "error_code",
    "error",
    "attempts",
    "phone_e164",
    "scheduled_time_sent",
    "time_moved",
    "window_rule",
)


# SourceRow and Checked are built once a row, a million times for a big file: not frozen, since
# a frozen dataclass sets each field through object.__setattr__ (1.1 µs more a row each). Both
# are still treated as values: nothing assigns to one, `dataclasses.replace` makes a variant.
@dataclass(slots=True)
class SourceRow:
    """One non-blank input record, every cell as text, in the input's column order."""

    row: int  # 1-based record number, header excluded; the `row` column of results.csv
    cells: tuple[str, ...]
    # When the input is one of our own results.csv files: its outcome columns, by name.
    prior: dict[str, str] | None = None
    # The cells exactly as read, when trimming `cells` changed any (None: they are `cells`):
    # what results.csv writes back, byte for byte.
    raw: tuple[str, ...] | None = None


@dataclass(slots=True)
class Checked:
    """A row after validation: either a request to send, or an error code and a sentence."""

    row: int
    cells: tuple[str, ...]
    request: CreatePhoneCallRequest | EncodedRequest | None = None
    phone_e164: str | None = None
    error_code: str | None = None
    error: str | None = None
    outcome: PlannedState = "pending"  # the row's state in the journal (`journal.State`)
    # Whether a calling window moved the row's time; the time as sent is the request's.
    time_moved: bool = False
    # The rule that moved or refused the row, with its source.
    window_rule: str | None = None
