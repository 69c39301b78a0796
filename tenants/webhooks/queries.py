"""Reads of a tenant's webhook deliveries: one statement for an endpoint's delivery log, which the API pages
through and the service's list reads (the tenant door scopes it)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus


def endpoint_deliveries_query(endpoint_id: uuid.UUID, *, status: WebhookDeliveryStatus | None = None) -> Select:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return query


__all__ = ["endpoint_deliveries_query"]
