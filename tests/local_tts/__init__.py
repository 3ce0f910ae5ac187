"""Tests of the offline TTS server."""
