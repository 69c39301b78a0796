"""The input rule (``platform/input_rules.py``) at the web edge: the first middleware of every route.

Before any other middleware, guard, dependency or handler sees the request, it checks the path (and so
every path parameter), each query parameter and cookie, and the body a route is going to decode: a form
(portal pages) or JSON (every route that takes ``data``). A request that breaks the rule is refused whole
with a 400 naming the field (``q``, ``data.items[3].name``); the portal's pages render it as their error
page. Nothing downstream decodes a JSON body again: the checked document is handed to Litestar as the
request's decoded JSON. The webhook route reads its body raw and applies the same rule itself
(``web/hooks.py``).
"""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from backoffice.platform.input_rules import check_texts, parse_json

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORMS = (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART)


class InputRuleMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request: Request = Request(scope, receive)
        check_texts([("path", scope["path"])])
        check_texts(request.query_params.multi_items())
        check_texts((f"cookie {name}", value) for name, value in request.cookies.items())
        if scope["method"] in BODY_METHODS:
            form = request.content_type[0] in FORMS
            wants_json = _takes_json(scope["route_handler"])
            if form or wants_json:
                body = await request.body()  # within the route's body size limit (413 beyond)
                if form:
                    check_texts(_form_texts(await request.form()))
                if wants_json and body:
                    # Litestar would decode it once more otherwise; this is the checked document.
                    ScopeState.from_scope(scope).json = parse_json(body)
                receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _takes_json(handler) -> bool:
    """Whether the route decodes its body as JSON: it takes ``data``, not declared as a form."""
    signature = getattr(handler, "parsed_fn_signature", None)
    field = signature.parameters.get("data") if signature is not None else None
    if field is None:
        return False
    return getattr(field.kwarg_definition, "media_type", RequestEncodingType.JSON) == RequestEncodingType.JSON


def _form_texts(form) -> list[tuple[str, str]]:
    texts = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            texts.append((f"{name}.filename", value.filename or ""))
        elif isinstance(value, str):
            texts.append((name, value))
    return texts


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once more, for the middlewares after this one that read the raw stream (idempotency)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
