"""Samples of what real Fish clients send, shared by the protocol and server tests."""

from __future__ import annotations

from typing import Any

#: What fishaudio 1.3.0 sends as its start request, nils included.
SDK_DEFAULT_REQUEST: dict[str, Any] = {
    "text": "",
    "chunk_length": 200,
    "format": "mp3",
    "sample_rate": None,
    "mp3_bitrate": 128,
    "opus_bitrate": 32,
    "references": [],
    "reference_id": None,
    "normalize": True,
    "latency": "balanced",
    "prosody": None,
    "top_p": 0.7,
    "temperature": 0.7,
    "max_new_tokens": 1024,
    "repetition_penalty": 1.2,
    "min_chunk_length": 50,
    "condition_on_previous_chunks": True,
    "early_stop_threshold": 1.0,
}
