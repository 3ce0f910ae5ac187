"""Figure 7: the offline engines' speed, the neural piper voice next to espeak-ng.

Each engine is built as local_tts builds it (:func:`local_tts.engines.make_engine`)
with a pool of one worker process, and speaks the same ``engine_texts`` texts
one after another after a warm-up call.  One process running one call at a
time uses one core (piper's onnxruntime is held to one thread), so audio
seconds per wall second is also the speed per core; a pool of N processes
on N free cores goes N times as fast.  The worker's CPU time is not visible
from here, so the detail line gives wall times only.
"""

from __future__ import annotations

import asyncio
import time

from bench.infra import Services, log
from bench.report import Row
from bench.sizes import Sizes
from bench.texts import paragraphs
from local_tts.engines import make_engine
from local_tts.voices import DEFAULT_VOICE


async def _speed(name: str, texts: list[str]) -> tuple[float, float]:
    """(audio seconds, wall seconds) for ``texts`` spoken one by one by a one-process engine."""
    engine = make_engine(name, processes=1)
    try:
        async for _ in engine.synthesize("Warming up.", DEFAULT_VOICE, 1.0):
            pass  # the first call pays for the worker's start and the model's load
        samples = 0
        started = time.perf_counter()
        for text in texts:
            async for piece in engine.synthesize(text, DEFAULT_VOICE, 1.0):
                samples += len(piece)
        wall = time.perf_counter() - started
    finally:
        await engine.aclose()
    return samples / engine.native_rate, wall


def run(services: Services, sizes: Sizes) -> list[Row]:
    del services  # the engines run here, without the stack
    texts = [paragraphs(sizes.engine_chars, seed=700 + i) for i in range(sizes.engine_texts)]
    speeds: dict[str, tuple[float, float]] = {}
    for name in ("piper", "espeak"):
        log(f"7 engine speed: {name}, {len(texts)} texts of ~{sizes.engine_chars} characters")
        speeds[name] = asyncio.run(_speed(name, texts))
    (piper_audio, piper_wall), (espeak_audio, espeak_wall) = speeds["piper"], speeds["espeak"]
    return [
        Row(
            figure="7",
            name="offline voice speed per core: piper / espeak",
            value=piper_audio / piper_wall,
            reference=espeak_audio / espeak_wall,
            unit="audio s/s",
            meaning="how much slower the natural voice is; >1 audio s/s keeps up with playback",
            details={
                "texts": len(texts),
                "piper_audio_s": piper_audio,
                "piper_wall_s": piper_wall,
                "espeak_audio_s": espeak_audio,
                "espeak_wall_s": espeak_wall,
            },
        )
    ]
