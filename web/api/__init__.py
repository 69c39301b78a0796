"""The tenant-scoped REST API, /api/v1."""
