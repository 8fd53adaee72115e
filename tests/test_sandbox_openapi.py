"""The sandbox held to the vendor's OpenAPI document by a schema-driven fuzzer (schemathesis).

Positive and negative bodies, missing and wrong credentials, and undocumented methods are all
sent to a live sandbox on loopback; every answer must be one the document allows, with no 5xx.
"""

from __future__ import annotations

import pytest
import schemathesis
import yaml
from e2e_support import SPEC
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from batchcall.sandbox import SandboxConfig, start_sandbox

KEY = "sk_openapi_fuzz"

schema = schemathesis.openapi.from_path(SPEC)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=60
)
# A schema-valid body may still name a number outside the team (404, documented) or a string
# that is no phone number at all (400, documented): the schema cannot say which are real.
schema.config.checks.positive_data_acceptance.expected_statuses = ["201", "400", "404"]
# A body that breaks the schema is a 400; one sent with broken credentials is a 401 first.
schema.config.checks.negative_data_rejection.expected_statuses = ["400", "401"]


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(SandboxConfig(api_key=KEY, limit=None)) as running:
        yield running


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_sandbox_answers_as_the_openapi_document_says(case, sandbox):
    """Fuzzed requests get only documented statuses and bodies, never a 5xx."""
    case.call_and_validate(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {KEY}"})


def test_the_packaged_spec_is_the_vendor_document():
    """The sandbox ships its own copy of the spec, and it names the endpoint it serves."""
    document = yaml.safe_load(SPEC.read_text())
    assert "/api/v1/create-phone-call" in document["paths"]
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
