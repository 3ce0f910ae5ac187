"""local_tts: an offline TTS server that speaks Fish Audio's live WebSocket protocol."""
