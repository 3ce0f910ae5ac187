"""``/v1/lexicons``: a tenant's pronunciation lexicons (see :mod:`worker.lexicons`)."""
