"""Counters the server keeps so tests and benchmarks can see what it did.

Served as JSON on ``GET /_admin/stats``; ``POST /_admin/reset`` zeroes them.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

#: How many finished sessions the stats keep (oldest dropped first).
SESSION_HISTORY = 5000


@dataclass(slots=True)
class SessionRecord:
    """What one connection (or one ``POST /v1/tts``) did."""

    n: int
    model: str
    kind: str = "live"  # "live" (WebSocket), "rest" (POST /v1/tts) or "timestamps" (SSE)
    format: str = ""
    text: str = ""
    audio_events: int = 0
    audio_bytes: int = 0
    audio_dropped: int = 0  # audio events a truncate fault did not send
    starts: int = 0
    end: str = "open"  # open, stop, error, drop, close, stall, disconnect
    error: str | None = None
    # The voice the request named: its reference_id (a string, a list, or None)
    # and one {"sha256", "bytes", "text"} per reference audio, as last received.
    reference_id: str | list[str] | None = None
    references: list[dict[str, Any]] = field(default_factory=list)
    # Wall-clock times (time.time()) the connection was taken and closed, for benchmarks.
    opened_at: float = 0.0
    closed_at: float | None = None


@dataclass(slots=True)
class Stats:
    sessions_started: int = 0
    sessions_active: int = 0
    sessions_peak: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    sessions: deque[SessionRecord] = field(default_factory=lambda: deque(maxlen=SESSION_HISTORY))

    def reject(self, status: int) -> None:
        self.rejected[str(status)] += 1

    def open(self, model: str, kind: str = "live") -> SessionRecord:
        self.accepted += 1
        self.sessions_started += 1
        self.sessions_active += 1
        self.sessions_peak = max(self.sessions_peak, self.sessions_active)
        record = SessionRecord(
            n=self.sessions_started, model=model, kind=kind, opened_at=time.time()
        )
        self.sessions.append(record)
        return record

    def close(self, record: SessionRecord) -> None:
        self.sessions_active -= 1
        record.closed_at = time.time()
        if record.end == "open":
            record.end = "disconnect"

    def reset(self) -> None:
        self.sessions_started = 0
        self.sessions_peak = self.sessions_active
        self.accepted = 0
        self.rejected.clear()
        self.sessions.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions_started": self.sessions_started,
            "sessions_active": self.sessions_active,
            "sessions_peak": self.sessions_peak,
            "handshakes": {"accepted": self.accepted, "rejected": dict(self.rejected)},
            "sessions": [asdict(s) for s in self.sessions],
        }
