"""``/v1/voices``: a tenant's voices, uploaded once and named by id in jobs."""
