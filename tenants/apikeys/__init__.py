"""Tenant API keys: recognisable, checksummed, stored only as a hash, scoped, expiring, revocable."""
