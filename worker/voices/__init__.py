"""Voices: a tenant's reference recordings, kept once and named by id in jobs."""
