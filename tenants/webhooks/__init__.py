"""Outbound webhooks for the tenant's systems: endpoints, signed deliveries, retries, replay."""
