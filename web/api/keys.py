"""/api/v1/keys: a key with ``keys:write`` (a tenant admin's) manages the company's API keys. It never grants
more than it has: it creates and rolls only keys whose scopes it holds itself."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Router, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.apikeys.service import (
    create_api_key, get_api_key, list_api_keys, revoke_api_key, roll_api_key,
)
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, ApiKeyRoll


def _created(new) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(new.key).model_dump(), "secret": new.secret})


@endpoint(get, "/", scope="keys:read", operation_id="listApiKeys")
async def list_(session: AsyncSession) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in await list_api_keys(session)]


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
