"""/api/v1/staff: the provider staff side of the API (staff tokens, tenants they are assigned to)."""
