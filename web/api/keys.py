"""/api/v1/keys: a key with ``keys:write`` (a tenant admin's) manages the company's API keys. It never grants
more than it has: it creates and rolls only keys whose scopes it holds itself."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Router, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.apikeys.service import (
    api_keys_query,
    create_api_key, get_api_key, revoke_api_key, roll_api_key,
)
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, ApiKeyRoll, Page


def _created(new) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(new.key).model_dump(), "secret": new.secret})


@endpoint(get, "/", scope="keys:read", operation_id="listApiKeys")
async def list_(
    session: AsyncSession,
    sort: str = Parameter(default="created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[ApiKeyOut]:
    page = await paginate(session, api_keys_query(), ApiKey, sorts={"created_at": ApiKey.created_at}, sort=sort,
                          limit=limit, cursor=cursor)
    return Page[ApiKeyOut](data=[ApiKeyOut.model_validate(k) for k in page.items], next_cursor=page.next_cursor)


@endpoint(post, "/", scope="keys:write", operation_id="createApiKey", status_code=201)
async def create(data: ApiKeyIn, session: AsyncSession, principal: ApiPrincipal) -> ApiKeyCreated:
    return _created(await create_api_key(session, **data.model_dump(), acting=principal.actor(),
                                         within=principal.scopes))


@endpoint(get, "/{key_id:uuid}", scope="keys:read", operation_id="getApiKey", errors=(404,))
async def get_one(key_id: uuid.UUID, session: AsyncSession) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await get_api_key(session, key_id))


@endpoint(post, "/{key_id:uuid}/roll", scope="keys:write", operation_id="rollApiKey", status_code=201, errors=(404,))
async def roll(key_id: uuid.UUID, data: ApiKeyRoll, session: AsyncSession, principal: ApiPrincipal) -> ApiKeyCreated:
    new = await roll_api_key(session, key_id, overlap=timedelta(hours=data.overlap_hours), acting=principal.actor(),
                             within=principal.scopes)
    return _created(new)


@endpoint(post, "/{key_id:uuid}/revoke", scope="keys:write", operation_id="revokeApiKey", status_code=200,
          errors=(404,))
async def revoke(key_id: uuid.UUID, session: AsyncSession, principal: ApiPrincipal) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await revoke_api_key(session, key_id, acting=principal.actor()))


router = Router("/keys", route_handlers=[list_, create, get_one, roll, revoke], tags=["keys"])
