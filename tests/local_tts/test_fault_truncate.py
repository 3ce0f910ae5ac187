"""The ``truncate`` fault: a session that loses its audio yet ends normally.

Through the worker's own streaming client, against the real server: the
session ends with ``finish``/``stop`` (no error the client could see), only
the first ``after_audio`` audio events arrive, and the duration check of
:mod:`worker.jobs.truncation` is what catches it.
"""

from __future__ import annotations

import pytest

from local_tts.faults import FaultAction, FaultPlan
from tests.servers import LocalTTS
from worker.fish import AudioFormat, TTSRequest
from worker.fish.client import ProviderConfig, stream_tts
from worker.jobs.truncation import AudioTruncated, check_duration

TEXT = (
    "The harbour lay quiet under a grey sky, and the boats rocked gently at their moorings "
    "while the gulls wheeled and cried above the empty quay. "
) * 2
RATE = 16000


async def _pcm(tts: LocalTTS, model: str) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    config = ProviderConfig(ws_url=tts.ws_url, model=model)
    request = TTSRequest(format=AudioFormat.PCM, sample_rate=RATE)
    result = await stream_tts(config, request, TEXT, chunks.append)
    return b"".join(chunks), result.audio_events


def _session(tts: LocalTTS, model: str) -> dict:
    stats = tts.wait_idle()
    return next(s for s in stats["sessions"] if s["model"] == model)


async def test_truncate_ends_normally_with_the_rest_of_the_audio_dropped(tone: LocalTTS) -> None:
    whole, events = await _pcm(tone, "whole")
    assert events > 4
    tone.set_faults({"rules": [{"action": "truncate", "session": 1, "after_audio": 2}]})
    cut, cut_events = await _pcm(tone, "cut")  # no error: finish/stop came as usual
    assert cut_events == 2
    assert 0 < len(cut) < len(whole) // 2
    assert cut == whole[: len(cut)]  # what did arrive is the start of the real audio
    record = _session(tone, "cut")
    assert record["end"] == "stop"
    assert record["audio_events"] == 2 and record["audio_dropped"] == events - 2

    # The worker's check tells the two apart.
    check_duration(len(whole) / 2 / RATE, TEXT)
    with pytest.raises(AudioTruncated, match="cut short"):
        check_duration(len(cut) / 2 / RATE, TEXT)


async def test_truncate_applies_to_its_session_only(tone: LocalTTS) -> None:
    tone.set_faults({"rules": [{"action": "truncate", "session": 2, "after_audio": 0}]})
    first, _ = await _pcm(tone, "first")
    second, events = await _pcm(tone, "second")
    third, _ = await _pcm(tone, "third")
    assert events == 0 and second == b""
    assert first == third and len(first) > 0


def test_truncate_parses() -> None:
    plan = FaultPlan.parse({"rules": [{"action": "truncate", "after_audio": 3}]})
    (fault,) = plan.next_session()
    assert fault.action is FaultAction.TRUNCATE and fault.after_audio == 3
