"""The areas app's HTTP API: CRUD of service areas (crud.py), the partner endpoints (partner.py) and their
OpenAPI documentation (schema.py)."""
