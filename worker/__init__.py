"""shoal's worker package: Fish protocol, synthesis tasks, assembly, storage.

Kept free of side effects at import time, so `local_tts` and `api` can import
the pieces they share (``worker.fish``) without pulling in the Celery app.
"""
