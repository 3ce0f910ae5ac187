"""How big each figure's workload is, per mode (``--quick``, default, ``--full``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    # pacing of the "realistic" provider (figures 1-4)
    rtf: float = 0.1  # wall seconds per audio second
    ttfb_ms: float = 100.0
    # 1: pipeline overhead
    overhead_chars: int = 6000  # ~6.5 min of audio, 4-5 segments
    overhead_reps: int = 3
    # 2: short jobs
    short_jobs: int = 100
    short_concurrency: int = 8  # jobs one worker process runs at once (the default)
    # 3: slot use
    slot_limit: int = 4
    slot_jobs: int = 32
    slot_job_chars: int = 600
    # 4: long book
    book_segments: int = 30
    book_segment_chars: int = 600
    book_parallel: int = 4
    # 5: memory
    rss_short_audio_s: float = 60.0
    rss_mid_audio_s: float = 900.0  # long enough that its output goes up in several parts
    rss_long_audio_s: float = 3600.0
    rss_format: str = "mp3"
    rss_sample_rate: int = 16000
    # 6: client vs SDK
    sdk_sessions: int = 16
    sdk_chars: int = 900  # ~1 min of audio per session
    sdk_reps: int = 3
    # 8: Redis commands per job
    redis_jobs: int = 10
    # 7: offline engine speed
    engine_texts: int = 6
    engine_chars: int = 600  # ~40 s of audio per text


QUICK = Sizes(
    overhead_chars=3000,
    overhead_reps=1,
    short_jobs=40,
    slot_jobs=12,
    slot_job_chars=400,
    book_segments=30,
    book_segment_chars=200,
    rss_mid_audio_s=600.0,
    rss_long_audio_s=1200.0,
    sdk_sessions=8,
    sdk_reps=2,
    engine_texts=2,
    redis_jobs=4,
)
DEFAULT = Sizes()
FULL = Sizes(rss_mid_audio_s=3600.0, rss_long_audio_s=36000.0)
