"""The service's routers, one per resource (all versioned under ``/v1`` except health)."""
