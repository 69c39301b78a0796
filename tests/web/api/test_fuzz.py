"""Property-based fuzzing of the whole OpenAPI document with schemathesis, in process against the app:
no answer is a 5xx, every status is documented, every body matches its schema and content type.

Generation is bounded (a few examples per operation) to keep the run short; schemathesis builds the
cases from the document the app serves, so a new route is fuzzed the day it lands.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)

from backoffice.platform.audit.service import Actor
from backoffice.platform.staff.service import create_staff
from tests.web.api.conftest import bearer, make_key

EXAMPLES = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _cases(operation, examples: int) -> list:
    cases = []

    @given(operation.as_strategy())
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def collect(case) -> None:
        cases.append(case)

    collect()
    return cases


async def test_fuzz_every_operation(client, database, tenants):
    async with database.system() as session:
        await create_staff(session, email="fuzz@provider.example", name="Fuzz", role="provider_admin",
                           password="a-long-enough-password", acting=Actor.system("tests"))
    token = (await client.post("/api/v1/staff/tokens", json={"email": "fuzz@provider.example",
                                                              "password": "a-long-enough-password"})).json()["token"]
    api_key = await make_key(database, tenants.a.id, rate_limit_per_minute=100_000)
    document = (await client.get("/api/v1/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    failures, calls, succeeded = [], 0, set()
    for result in schema.get_all_operations():
        operation = result.ok()
        staff = operation.path.startswith("/api/v1/staff")
        auth = {"Authorization": f"Bearer {token}"} if staff else bearer(api_key)
        for case in _cases(operation, EXAMPLES):
            kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
            headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
            response = await client.request(
                case.method, case.formatted_path, params=case.query, headers=headers | auth,
                content=kwargs.get("content"), json=kwargs.get("json"), data=kwargs.get("data"),
            )
            calls += 1
            if response.status_code < 300:
                succeeded.add((case.method, operation.path))
            try:
                case.validate_response(response, checks=CHECKS)
            except AssertionError as error:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {error}"[:800])
    assert calls >= 30 * 2
    # The fuzzing got past authentication into the handlers: every list operation answered 2xx at least once.
    lists = {("GET", path) for path, item in document["paths"].items() if "{" not in path and "get" in item}
    assert len(lists) >= 9 and lists <= succeeded, lists - succeeded
    assert not failures, "\n\n".join(failures[:5])
