"""Property-based run of the whole OpenAPI document: no 500, no answer that breaks its own schema."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cmdb_sync.app import create_app
from tests.conftest import WEBHOOK_TOKEN, make_settings, post_delivery

ADMIN = "admin-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(engine, migrated_url, seed):
    app = create_app(make_settings(migrated_url, api_admin_tokens=[ADMIN]))
    with TestClient(app) as client:
        for delivery in seed.values():
            post_delivery(client, delivery)
    return schemathesis.openapi.from_asgi("/schema/openapi.json", app)


def test_every_operation_answers_within_its_schema(api_schema) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}", "X-AppStack-Token": WEBHOOK_TOKEN}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 19

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def answers_within_schema(case) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        answers_within_schema()
