"""What every /api/v1 route shares: its tenant session, its declared scope and its documented problems."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, get_type_hints

from litestar import Request
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.schemas import Problem, one_time_secret_fields

PROBLEM_MEDIA = "application/problem+json"
DESCRIPTIONS = {
    400: "The request is malformed (a parameter or the body does not parse).",
    401: "No API key, or an invalid, revoked or expired one.",
    403: "The key lacks the scope, or the company is suspended.",
    404: "No such object for this company.",
    409: "Conflicts with existing data, or a request with this Idempotency-Key is still in progress.",
    413: "The request body is too large.",
    422: "The input is refused; `errors` names each field.",
    429: "Rate limit exceeded; retry after `Retry-After` seconds.",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """The problem answers of a route: the ones every route has, plus ``codes``."""
    every = (400, 401, 403, 422, 429)
    return {
        code: ResponseSpec(data_container=Problem, description=DESCRIPTIONS[code], media_type=PROBLEM_MEDIA)
        for code in sorted(set(every) | set(codes))
    }


REPLAYED = ResponseHeader(
    name="Idempotent-Replayed", documentation_only=True, required=False, value="true",
    description="`true` when this answer is the stored answer of an earlier request with the same key, "
                "`Idempotency-Key` and body (kept 24 hours).")
WITHHELD = ResponseHeader(
    name="Idempotent-Secret-Withheld", documentation_only=True, required=False, value="secret",
    description="On a replayed answer: the fields holding a one-time secret, answered as null (a secret is shown "
                "once, in the first answer, and never stored).")


def endpoint(decorator: Callable, path: str, *, scope: str, operation_id: str, errors: tuple[int, ...] = (),
             **kwargs: Any) -> Callable:
    """A route with its scope (checked by the API key middleware before anything else, replays included),
    its documented problem answers and, read from its answer's model, the one-time secrets the idempotency
    layer must never store."""
    post = decorator.__name__ == "post"
    codes = errors + ((409, 413) if post else ())

    def register(fn: Callable) -> Any:
        secrets = one_time_secret_fields(get_type_hints(fn).get("return"))
        headers = ([REPLAYED] + ([WITHHELD] if secrets else [])) if post else []
        return decorator(path, opt={"scope": scope, "one_time_secrets": secrets}, operation_id=operation_id,
                         responses=problems(*codes), response_headers=headers, **kwargs)(fn)

    return register


def provide_principal(request: Request) -> ApiPrincipal:
    return request.scope["user"]


async def provide_session(principal: ApiPrincipal, request: Request) -> AsyncIterator[AsyncSession]:
    """The key's tenant session: commits when the handler succeeds, rolls back otherwise.

    The unit of work every tenant door uses (``Database.tenant``): the transaction opens before the handler
    runs, and opening it is tried again once when the pooled connection turns out to be dead. The database
    comes from the app's state through the request: a ``State`` parameter is a fresh copy of the app's state
    (with a lock of its own) on every request, 2.6% of the single-event intake's CPU.
    """
    async with request.app.state.database.tenant(principal.tenant_id) as session:
        yield session
