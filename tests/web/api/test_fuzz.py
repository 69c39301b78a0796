"""Property-based fuzzing of the whole OpenAPI document with schemathesis, in process against the app:
no answer is a 5xx, every status is documented, every body matches its schema and content type.

Generation is bounded (a few examples per operation) to keep the run short; schemathesis builds the
cases from the document the app serves, so a new route is fuzzed the day it lands.

Then hostile input on every operation: each string parameter (query and path) and each string field the
document declares in a request body (free-form objects get one of their own) receives, in turn, a NUL, an
unpaired surrogate, text past the input rule's length cap and long text within it; every body is sent
nested 10,000 deep and with a 200,000-digit integer. Nothing may answer 5xx, and what breaks the input
rule (platform/input_rules.py) must be refused with a documented 4xx.
"""

from __future__ import annotations

import copy
import json
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)

from backoffice.platform.audit.service import Actor
from backoffice.platform.input_rules import MAX_TEXT
from backoffice.tenants.staff.service import create_staff
from tests.web.api.conftest import bearer, make_key, make_objects

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


async def _staff_token(client, database) -> str:
    async with database.system() as session:
        await create_staff(session, email="fuzz@provider.example", name="Fuzz", role="provider_admin",
                           password="a-long-enough-password", acting=Actor.system("tests"))
    return (await client.post("/api/v1/staff/tokens", json={"email": "fuzz@provider.example",
                                                             "password": "a-long-enough-password"})).json()["token"]


async def test_fuzz_every_operation(client, database, tenants):
    token = await _staff_token(client, database)
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


# --- hostile input ---------------------------------------------------------------------------------

# (name, value, whether the input rule refuses it: then the answer must be a 4xx)
HOSTILE_TEXT = [("NUL", "ab\x00cd", True), ("lone surrogate", "ab\ud800cd", True),
                ("past the cap", "x" * (MAX_TEXT + 1), True), ("long", "y" * 3_000, False)]
# In a URL: the surrogate as the bytes a client would send (they decode to U+FFFD, not to a surrogate), and
# long text kept under the length clients accept for a URL.
HOSTILE_URL = [("NUL", "ab%00cd", True), ("lone surrogate", quote("ab\ud800cd".encode("utf-8", "surrogatepass")), False),
               ("long", "y" * 20_000, False)]
DEEP = "[" * 10_000 + "]" * 10_000
HUGE = "7" * 200_000


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_paths(document: dict, schema: dict, path: tuple = (), depth: int = 0) -> list[tuple]:
    """Where a request body declares text: the path of every string field (lists through their first item),
    and a field of its own in a free-form object."""
    schema = _resolve(document, schema)
    if depth > 5:
        return []
    found: list[tuple] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += string_paths(document, option, path, depth + 1)
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        found.append(path)
    if kind == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            found += string_paths(document, sub, (*path, name), depth + 1)
        if schema.get("additionalProperties") not in (None, False):
            found.append((*path, "fuzz_field"))
    if kind == "array" and "items" in schema:
        found += string_paths(document, schema["items"], (*path, 0), depth + 1)
    return list(dict.fromkeys(found))


def placed(body, path: tuple, value):
    """A copy of ``body`` with ``value`` at ``path``, creating what is missing on the way."""
    if not path:
        return value
    root = copy.deepcopy(body)
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        root = root if isinstance(root, list) and root else [{} if rest and isinstance(rest[0], str) else None]
        root[0] = placed(root[0], rest, value)
    else:
        root = root if isinstance(root, dict) else {}
        root[head] = placed(root.get(head), rest, value)
    return root


def _url(template: str, path_values: dict, query: dict) -> str:
    path = template
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", str(value))
    pairs = [f"{quote(str(k), safe='%')}={quote(str(v), safe='%')}" for k, v in query.items() if v is not None]
    return path + ("?" + "&".join(pairs) if pairs else "")


@pytest.mark.postgres_only  # NUL and overlong text reach PostgreSQL there; the rule itself is the same on SQLite
async def test_fuzz_hostile_input_on_every_operation(client, database, tenants):
    token = await _staff_token(client, database)
    api_key = await make_key(database, tenants.a.id, rate_limit_per_minute=100_000)
    real = {**await make_objects(database, tenants.a, api_key), "tenant_id": tenants.a.id,
            "routine": "dunning_sweep"}
    document = (await client.get("/api/v1/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        definition = operation.definition.raw
        staff = operation.path.startswith("/api/v1/staff")
        auth = {"Authorization": f"Bearer {token}"} if staff else bearer(api_key)
        [case] = _cases(operation, 1) or [None]
        query = {k: v for k, v in ((case.query if case else None) or {}).items() if isinstance(v, (str, int, bool))}
        params = [p for p in definition.get("parameters", []) if p["in"] in ("query", "path")]
        path_values = {p["name"]: real.get(p["name"], "00000000-0000-0000-0000-000000000000")
                       for p in params if p["in"] == "path"}
        base_body = case.body if case is not None and isinstance(case.body, (dict, list)) else {}
        media = definition.get("requestBody", {}).get("content", {}).get("application/json")
        attempts: list[tuple[str, str, bytes | None, bool]] = []  # (what, url, body, refused by the rule)
        for param in params:
            for name, value, must_refuse in HOSTILE_URL:
                where = dict(path_values), dict(query)
                where[0 if param["in"] == "path" else 1][param["name"]] = value
                attempts.append((f"{param['in']} {param['name']} {name}", _url(operation.path, *where),
                                 json.dumps(base_body).encode() if media else None, must_refuse))
        url = _url(operation.path, path_values, query)
        if media:
            for field in string_paths(document, media["schema"]):
                for name, value, must_refuse in HOSTILE_TEXT:
                    attempts.append((f"body {'.'.join(map(str, field)) or '(whole)'} {name}", url,
                                     json.dumps(placed(base_body, field, value)).encode(), must_refuse))
            attempts.append(("body nested 10,000 deep", url, DEEP.encode(), True))
            first = next(iter(string_paths(document, media["schema"])), ("fuzz_field",))
            attempts.append(("body with a 200,000-digit integer", url,
                             json.dumps(placed(base_body, first, 0)).replace(": 0", ": " + HUGE, 1).encode()
                             if first else HUGE.encode(), True))
        for what, target, body, must_refuse in attempts:
            headers = auth | ({"content-type": "application/json"} if body is not None else {})
            response = await client.request(operation.method.upper(), target, content=body, headers=headers)
            calls += 1
            documented = {int(code) for code in definition.get("responses", {}) if code.isdigit()}
            status = response.status_code
            if status >= 500 or (must_refuse and not 400 <= status < 500) or status not in documented:
                failures.append(f"{operation.method.upper()} {operation.path} [{what}] -> {status}: "
                                f"{response.text[:300]}")
    assert calls >= 300
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:15])
