"""The sandbox, over real HTTP on loopback: the API as the spec describes it, and its knobs."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
import yaml
from e2e_support import SPEC

from batchcall.sandbox import (
    TEAM_FROM_NUMBERS,
    TEAM_SCRIPT_IDS,
    RunningSandbox,
    SandboxConfig,
    start_sandbox,
)
from batchcall.sandbox._config import RUNTIME_FIELDS

PATH = "/api/v1/create-phone-call"
# The spec's own request example. Its time is a fixed date already past: like the spec, the
# sandbox checks a time's form, never whether it is still to come, so no test here reads the
# clock through it.
_CREATE = yaml.safe_load(SPEC.read_text())["paths"][PATH]["post"]
EXAMPLE = _CREATE["requestBody"]["content"]["application/json"]["example"]
DEFAULTS = {
    name: value
    for name, value in SandboxConfig(api_key="unused").public().items()
    if name in RUNTIME_FIELDS
}


@pytest.fixture(scope="module")
def server():
    with start_sandbox(SandboxConfig(seed=7)) as running:
        yield running


@pytest.fixture
def sandbox(server: RunningSandbox) -> RunningSandbox:
    """The module's server with default settings and nothing remembered."""
    server.configure(**DEFAULTS)
    server.reset()
    return server


@pytest.fixture
def client(sandbox: RunningSandbox):
    with httpx.Client(
        base_url=sandbox.base_url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10.0,
    ) as http:
        yield http


def body(**changes) -> dict:
    """The spec's example with `changes` made to it."""
    data = {**EXAMPLE, "contact": dict(EXAMPLE["contact"])}
    data.update(changes)
    return data


# --- the happy path and contacts -----------------------------------------------------------


def test_spec_example_schedules_a_call_listed_by_the_admin_endpoint(sandbox, client):
    """The spec's own example gets a 201 with ids, and the call is listed with an E.164 phone."""
    response = client.post(PATH, json=EXAMPLE, headers={"Idempotency-Key": "row-1"})
    assert response.status_code == 201
    answer = response.json()
    assert answer["success"] is True and answer["status"] == "scheduled"
    (call,) = sandbox.calls()
    assert call["call_id"] == answer["call_id"]
    assert call["contact_id"] == answer["contact_id"]
    assert call["phone_number"] == "+61429069971"
    assert call["from_number"] == "+61291234567"
    assert call["script_id"] == EXAMPLE["script_id"]
    assert call["scheduled_time"] == EXAMPLE["scheduled_time"]
    assert (call["first_name"], call["last_name"]) == ("John", "Smith")
    assert call["idempotency_key"] == "row-1"
    assert call["created_at"] > 0


def test_contacts_are_upserted_by_phone_number(sandbox, client):
    """The same number in another format is the same contact, and a new name replaces the old."""
    first = client.post(PATH, json=EXAMPLE).json()
    again = body(contact={"phone_number": "+61 429 069 971", "first_name": "Johnny"})
    second = client.post(PATH, json=again).json()
    other = client.post(PATH, json=body(contact={"phone_number": "0412345678"})).json()
    assert second["contact_id"] == first["contact_id"]
    assert second["call_id"] != first["call_id"]
    assert other["contact_id"] != first["contact_id"]
    contacts = {c["phone_number"]: c for c in sandbox.contacts()}
    assert contacts["+61429069971"]["first_name"] == "Johnny"
    assert contacts["+61429069971"]["last_name"] == "Smith"  # omitted, so kept
    assert len(sandbox.calls()) == 3


def test_objects_and_unknown_fields_are_accepted(sandbox, client):
    """Object data is stored as sent; a property the spec does not name is ignored, not refused."""
    sent = body(objects={"policy": {"number": "P-1001", "premium": 42}}, campaign="spring")
    assert client.post(PATH, json=sent).status_code == 201
    assert sandbox.calls()[0]["objects"] == {"policy": {"number": "P-1001", "premium": 42}}


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "Malformed"),
        ("Bearer", "Malformed"),
        ("Bearer not-the-key", "Invalid API key"),
    ],
)
def test_requests_without_the_right_bearer_key_get_401_and_create_nothing(
    sandbox, authorization, message
):
    """Missing, malformed or wrong keys all get the spec's 401 body, and no call is made."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(sandbox.base_url + PATH, json=EXAMPLE, headers=headers)
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert response.json()["message"].startswith(message)
    assert sandbox.calls() == []


def test_admin_endpoints_need_the_key_too(sandbox):
    """The call listing is personal data: without the key it is a 401."""
    response = httpx.get(sandbox.base_url + "/_sandbox/calls")
    assert response.status_code == 401


# --- 400, 404, 405 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"script_id": "x", "contact": {"phone_number": "0429069971"}}', "from_number"),
        (body(from_number=61291234567), "from_number"),
        (body(script_id=""), "script_id"),
        (body(script_id=None), "script_id"),
        ({k: v for k, v in EXAMPLE.items() if k != "contact"}, "contact"),
        (body(contact="0429069971"), "contact"),
        (body(contact={"first_name": "John"}), "contact.phone_number"),
        (body(contact={"phone_number": "   "}), "contact.phone_number"),
        (body(contact={"phone_number": "12345"}), "contact.phone_number"),
        (body(contact={"phone_number": "0429069971", "first_name": 7}), "contact.first_name"),
        (body(contact={"phone_number": "0429069971", "last_name": None}), "contact.last_name"),
        (body(objects=["policy"]), "objects"),
        (body(objects={"policy": "P-1"}), "objects.policy"),
        (body(scheduled_time="tomorrow at nine"), "scheduled_time"),
        (body(scheduled_time="2026-02-25T09:00:00"), "scheduled_time"),  # no offset
        (body(scheduled_time="2026-02-30T09:00:00Z"), "scheduled_time"),
        (body(from_number="not a number"), "from_number"),
    ],
)
def test_bad_bodies_get_400_naming_the_problem(sandbox, client, raw, mentions):
    """Each kind of malformed body gets a 400 whose message names the offending field."""
    if isinstance(raw, bytes):
        response = client.post(PATH, content=raw, headers={"Content-Type": "application/json"})
    else:
        response = client.post(PATH, json=raw)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert mentions in response.json()["message"]
    assert sandbox.calls() == []


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"from_number": "+61299998888"}, "from_number"),
        ({"script_id": "00000000-0000-0000-0000-000000000000"}, "script_id"),
    ],
)
def test_numbers_and_scripts_outside_the_team_get_404(sandbox, client, changes, mentions):
    """A valid number or script that is not the team's is a 404, as the spec documents."""
    response = client.post(PATH, json=body(**changes))
    assert response.status_code == 404
    assert mentions in response.json()["message"]
    assert sandbox.calls() == []


def test_every_seeded_team_number_and_script_is_accepted(sandbox, client):
    """The seeded team holds the spec example's number and script, plus a few more."""
    assert TEAM_FROM_NUMBERS[0] == EXAMPLE["from_number"]
    assert TEAM_SCRIPT_IDS[0] == EXAMPLE["script_id"]
    for number, script in zip(TEAM_FROM_NUMBERS, TEAM_SCRIPT_IDS, strict=True):
        assert client.post(PATH, json=body(from_number=number, script_id=script)).status_code == 201


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_the_endpoint_get_405_with_allow(sandbox, client, method):
    """Only POST is served on the endpoint; anything else is a 405 that names POST."""
    response = client.request(method, PATH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["success"] is False


def test_unknown_paths_get_a_json_404(sandbox, client):
    """A path outside the API is a 404 with the usual error body."""
    response = client.post("/api/v1/create-phone-calls", json=EXAMPLE)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Not Found"}


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_answer_without_a_new_call(sandbox, client):
    """A retried request with its Idempotency-Key gets the stored 201, and no second call."""
    first = client.post(PATH, json=EXAMPLE, headers={"Idempotency-Key": "run1-row7"})
    reordered = dict(reversed(list(EXAMPLE.items())))
    second = client.post(PATH, json=reordered, headers={"Idempotency-Key": "run1-row7"})
    assert second.status_code == 201
    assert second.json() == first.json()
    assert len(sandbox.calls()) == 1
    assert sandbox.stats()["replays"] == 1


def test_same_key_with_another_body_is_refused(sandbox, client):
    """Re-using a key for a different request is a 400, and creates nothing."""
    client.post(PATH, json=EXAMPLE, headers={"Idempotency-Key": "k"})
    other = body(contact={"phone_number": "0412345678"})
    response = client.post(PATH, json=other, headers={"Idempotency-Key": "k"})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["message"]
    assert len(sandbox.calls()) == 1


# --- rate limit --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "wait"), [("fixed", 60), ("sliding", 60), ("token_bucket", 30)])
def test_each_kind_answers_429_past_the_limit_without_executing_it(sandbox, client, kind, wait):
    """Past the limit the answer is a 429 with Retry-After and headers, and no call is made."""
    sandbox.configure(kind=kind, limit=2, window=60)
    answers = [client.post(PATH, json=EXAMPLE) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit"] == "2" for a in answers)
    refused = answers[2]
    assert refused.json() == {"success": False, "message": "Rate limit exceeded"}
    assert 0 < int(refused.headers["retry-after"]) <= wait
    assert len(sandbox.calls()) == 2
    stats = sandbox.stats()
    assert stats["rate_limited"] == 1 and stats["by_status"] == {"201": 2, "429": 1}


@pytest.mark.parametrize(
    ("mode", "on_201", "on_429"), [("on_429", False, True), ("never", False, False)]
)
def test_rate_limit_headers_can_come_only_on_429_or_never(sandbox, client, mode, on_201, on_429):
    """The header modes let a client be tested against APIs that say less about their limit."""
    sandbox.configure(limit=1, window=60, headers=mode)
    ok, refused = client.post(PATH, json=EXAMPLE), client.post(PATH, json=EXAMPLE)
    assert ("x-ratelimit-remaining" in ok.headers) is on_201
    assert ("x-ratelimit-limit" in refused.headers) is on_429
    assert "retry-after" in refused.headers


def test_retry_after_can_be_an_http_date(sandbox, client):
    """With retry_after_format='http-date', Retry-After is a date about a window away."""
    sandbox.configure(limit=1, window=30, retry_after_format="http-date")
    client.post(PATH, json=EXAMPLE)
    refused = client.post(PATH, json=EXAMPLE)
    when = parsedate_to_datetime(refused.headers["retry-after"]).timestamp()
    assert time.time() + 25 < when <= time.time() + 32


def test_a_scheduled_limit_change_shows_in_the_headers(sandbox, client):
    """`limit_change_at` after the first request, the limit and its header take the new value."""
    sandbox.configure(limit=10, window=60, limit_change_at=0.0, limit_after=2)
    answers = [client.post(PATH, json=EXAMPLE) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[0].headers["x-ratelimit-limit"] == "2"


def test_unlimited_sandbox_sends_no_rate_limit_headers(sandbox, client):
    """With no limit configured there is nothing to report, so no X-RateLimit headers."""
    response = client.post(PATH, json=EXAMPLE)
    assert response.status_code == 201
    assert "x-ratelimit-limit" not in response.headers


def test_auth_is_checked_before_the_rate_limit(sandbox, client):
    """A stranger's request neither spends the quota nor learns about it."""
    sandbox.configure(limit=1, window=60)
    stranger = httpx.post(sandbox.base_url + PATH, json=EXAMPLE)
    assert stranger.status_code == 401
    assert "x-ratelimit-limit" not in stranger.headers
    assert client.post(PATH, json=EXAMPLE).status_code == 201


# --- latency and faults --------------------------------------------------------------------


def test_latency_delays_answers_but_requests_overlap(sandbox):
    """Latency is per request and concurrent: 8 parallel requests take about one latency."""
    sandbox.configure(latency=0.3)

    async def burst() -> tuple[float, list[int]]:
        headers = {"Authorization": f"Bearer {sandbox.api_key}"}
        async with httpx.AsyncClient(base_url=sandbox.base_url, headers=headers) as http:
            start = time.perf_counter()
            answers = await asyncio.gather(*(http.post(PATH, json=EXAMPLE) for _ in range(8)))
            return time.perf_counter() - start, [a.status_code for a in answers]

    elapsed, statuses = asyncio.run(burst())
    assert statuses == [201] * 8
    assert 0.3 <= elapsed < 1.5  # one after another would take 2.4 s
    assert sandbox.stats()["max_in_flight"] >= 2


def test_fault_500_before_creates_nothing(sandbox, client):
    """An injected 500-before answers the spec's 500 body, and no call exists."""
    sandbox.configure(fault_500_before=1.0)
    response = client.post(PATH, json=EXAMPLE)
    assert response.status_code == 500
    assert response.json() == {"success": False, "message": "Internal server error"}
    assert sandbox.calls() == []


def test_fault_500_after_creates_the_call_and_a_replay_returns_it(sandbox, client):
    """After a 500-after the call exists; retrying with the same key returns that call, once."""
    sandbox.configure(fault_500_after=1.0)
    response = client.post(PATH, json=EXAMPLE, headers={"Idempotency-Key": "r9"})
    assert response.status_code == 500
    (call,) = sandbox.calls()
    sandbox.configure(fault_500_after=0.0)
    retried = client.post(PATH, json=EXAMPLE, headers={"Idempotency-Key": "r9"})
    assert retried.status_code == 201
    assert retried.json()["call_id"] == call["call_id"]
    assert len(sandbox.calls()) == 1


def test_fault_drop_after_cuts_the_connection_after_creating(sandbox, client):
    """A dropped connection reaches the client as RemoteProtocolError, yet the call exists."""
    sandbox.configure(fault_drop_after=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(PATH, json=EXAMPLE)
    assert len(sandbox.calls()) == 1
    assert sandbox.stats()["dropped"] == 1
    sandbox.configure(fault_drop_after=0.0)
    assert client.post(PATH, json=EXAMPLE).status_code == 201  # the client recovers


def test_fault_503_has_retry_after_and_creates_nothing(sandbox, client):
    """An injected 503 carries Retry-After (rounded up to whole seconds) and creates nothing."""
    sandbox.configure(fault_503=1.0, retry_after_503=1.5)
    response = client.post(PATH, json=EXAMPLE)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert sandbox.calls() == []


def test_fault_draws_repeat_with_the_same_seed(sandbox, client):
    """With a seed, the same requests meet the same faults, so a failing run can be replayed."""

    def statuses() -> list[int]:
        sandbox.configure(seed=11, fault_500_before=0.3, fault_503=0.3)
        return [client.post(PATH, json=EXAMPLE).status_code for _ in range(30)]

    first = statuses()
    sandbox.reset()
    assert statuses() == first
    assert {500, 503, 201} <= set(first)


def test_blocked_phones_get_400_until_unblocked(sandbox, client):
    """A number in reject_phones is refused with a 400; once removed it is accepted."""
    sandbox.configure(reject_phones={"+61429069971"})
    response = client.post(PATH, json=EXAMPLE)
    assert response.status_code == 400
    assert "blocked" in response.json()["message"]
    assert client.post(PATH, json=body(contact={"phone_number": "0412345678"})).status_code == 201
    sandbox.configure(reject_phones=set())
    assert client.post(PATH, json=EXAMPLE).status_code == 201


@pytest.mark.parametrize(
    "changes",
    [{"limit": 0}, {"kind": "leaky"}, {"fault_503": 2}, {"api_key": "x"}, {"limit_after": 3}],
)
def test_configure_refuses_bad_or_fixed_settings(sandbox, changes):
    """Run-time changes are checked: out-of-range values and fixed settings raise ValueError."""
    with pytest.raises(ValueError):
        sandbox.configure(**changes)


# --- persistence -----------------------------------------------------------------------------


def test_a_restarted_sandbox_keeps_calls_and_idempotency_records(tmp_path):
    """With db_path, calls survive a restart and a replayed key still returns the same call."""
    config = SandboxConfig(db_path=tmp_path / "sandbox.sqlite", api_key="sk_test_persist")
    headers = {"Authorization": "Bearer sk_test_persist", "Idempotency-Key": "row-3"}
    with start_sandbox(config) as first:
        created = httpx.post(first.base_url + PATH, json=EXAMPLE, headers=headers).json()
    with start_sandbox(config) as second:
        assert [c["call_id"] for c in second.calls()] == [created["call_id"]]
        replay = httpx.post(second.base_url + PATH, json=EXAMPLE, headers=headers)
        assert replay.status_code == 201
        assert replay.json() == created
        again = body(contact={"phone_number": "+61429069971"})
        assert (
            httpx.post(
                second.base_url + PATH,
                json=again,
                headers={"Authorization": "Bearer sk_test_persist"},
            ).json()["contact_id"]
            == created["contact_id"]
        )
        assert len(second.calls()) == 2


def test_generated_keys_are_random_and_never_shown_by_repr():
    """Without an api_key each sandbox makes up its own, and repr() does not reveal it."""
    with start_sandbox() as one, start_sandbox() as two:
        assert one.api_key != two.api_key
        assert one.api_key not in repr(one)
