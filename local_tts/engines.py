"""Speech engines: text and a voice in, int16 mono PCM pieces out, without blocking the loop.

Three engines share one interface (:class:`Engine`):

- :class:`EspeakEngine` speaks real, intelligible speech with libespeak-ng.  The
  library is not thread-safe, so it runs in a process pool (spawned, never
  forked: a forked child would inherit the parent's threads and locks); calls
  beyond the pool's size queue on it.
- :class:`PiperEngine` speaks natural speech with a Piper neural voice
  (onnxruntime), in the same kind of pool, the model loaded once per process;
  it needs the optional ``piper`` extra.
- :class:`ToneEngine` makes speech-shaped synthetic audio (voiced stretches at
  a syllable rhythm, pauses at spaces and sentence ends) that costs almost
  nothing to compute and is paced like a cloud service, for benchmarks.

All cut their output into pieces of about ``piece_ms``, the size of the
audio events a real provider sends (a few hundred ms; docs/protocol.md).

For timestamped synthesis each also has :meth:`Engine.timed`: the whole audio
of a text and where each word is in it (:class:`Timed`).  espeak-ng reports
each word as it speaks it; the tone engine knows its own pacing exactly;
piper places sentences exactly and words by letter count within them
(:mod:`local_tts.piper`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from local_tts import espeak, piper
from local_tts.voices import Voice

log = logging.getLogger(__name__)

ENGINE_NAMES = ("espeak", "tone", "piper")


class WordSpan(NamedTuple):
    """One word: characters ``start:end`` of the text, samples ``first:last`` of the audio."""

    start: int
    end: int
    first: int
    last: int


class Timed(NamedTuple):
    """The whole audio of one text (int16 mono at the engine's rate) and its words."""

    pcm: np.ndarray
    words: tuple[WordSpan, ...]


class Engine(Protocol):
    """What the server needs from a speech engine."""

    name: str
    native_rate: int  # sample rate of every piece synthesize() yields

    def synthesize(self, text: str, voice: Voice, speed: float) -> AsyncIterator[np.ndarray]:
        """Yield int16 mono pieces at ``native_rate``, each about ``piece_ms`` long.

        Pieces come as the engine produces them; the event loop is never
        blocked.  Whitespace-only text yields nothing.
        """
        ...

    async def timed(self, text: str, voice: Voice, speed: float) -> Timed:
        """All the audio of ``text`` (as :meth:`synthesize` gives it) and where its words are."""
        ...

    async def aclose(self) -> None:
        """Release the engine's resources (processes); it cannot be used afterwards."""
        ...


def make_engine(
    name: str,
    *,
    processes: int | None = None,
    rtf: float = 0.05,
    ttfb_ms: float = 50.0,
    piece_ms: float = 500.0,
) -> Engine:
    """Build the engine called ``name`` (one of :data:`ENGINE_NAMES`).

    ``processes`` sizes the espeak and piper pools (default: one per CPU);
    ``rtf`` and ``ttfb_ms`` pace the tone engine; ``piece_ms`` sets every
    engine's piece size.  ``"piper"`` raises :class:`~local_tts.piper.PiperError`
    when its optional extra is not installed.
    """
    if name == "espeak":
        return EspeakEngine(processes=processes, piece_ms=piece_ms)
    if name == "piper":
        return PiperEngine(processes=processes, piece_ms=piece_ms)
    if name == "tone":
        return ToneEngine(rtf=rtf, ttfb_ms=ttfb_ms, piece_ms=piece_ms)
    raise ValueError(f"unknown engine {name!r} (choose from {', '.join(ENGINE_NAMES)})")


def _piece_samples(piece_ms: float, rate: int) -> int:
    if piece_ms <= 0:
        raise ValueError(f"piece_ms must be positive, got {piece_ms}")
    return max(1, round(piece_ms * rate / 1000))


# -- process-pool engines: espeak and piper ---------------------------------


class _PoolEngine:
    """An engine whose synthesis runs in a pool of spawned processes.

    Subclasses name the worker function that speaks (:meth:`_call`), and the
    per-process set-up (``_initializer``, run once in each new process) and
    warm-up (``_warmup``, submitted once per process at start).
    """

    name: str
    native_rate: int

    def __init__(self, *, processes: int | None = None, piece_ms: float = 500.0) -> None:
        self.processes = max(1, processes or os.cpu_count() or 1)
        self.piece_samples = _piece_samples(piece_ms, self.native_rate)
        self._closed = False
        self._pool = self._start_pool()

    def _initializer(self) -> Callable[[], object] | None:
        return None

    def _warmup(self) -> Callable[[], object]:
        raise NotImplementedError

    def _call(self, text: str, voice: Voice, speed: float) -> tuple[Callable[..., Any], tuple]:
        """The worker function and its arguments that speak ``text``."""
        raise NotImplementedError

    def _timed_call(
        self, text: str, voice: Voice, speed: float
    ) -> tuple[Callable[..., Any], tuple]:
        """The worker function and its arguments that speak ``text`` with word positions."""
        raise NotImplementedError

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self._initializer(),
        )
        # Start every worker now rather than during the first burst of sessions:
        # each submit with no idle worker spawns one.
        for _ in range(self.processes):
            pool.submit(self._warmup())
        log.info("%s engine: %d worker processes", self.name, self.processes)
        return pool

    async def synthesize(self, text: str, voice: Voice, speed: float) -> AsyncIterator[np.ndarray]:
        """Speak ``text``; yield int16 pieces at ``native_rate`` once the pool has produced them."""
        if not text.strip():
            return
        result = await self._run(*self._call(text, voice, speed))
        if result.sample_rate != self.native_rate:
            raise RuntimeError(
                f"{self.name} produced {result.sample_rate} Hz, expected {self.native_rate} Hz"
            )
        pcm = np.frombuffer(result.pcm, dtype="<i2")
        for start in range(0, len(pcm), self.piece_samples):
            yield pcm[start : start + self.piece_samples]
            await asyncio.sleep(0)  # let other sessions run between pieces

    async def timed(self, text: str, voice: Voice, speed: float) -> Timed:
        """The whole audio of ``text`` and its words, from one call in the pool."""
        if not text.strip():
            return Timed(np.zeros(0, np.int16), ())
        result: espeak.TimedSynthesis = await self._run(*self._timed_call(text, voice, speed))
        if result.sample_rate != self.native_rate:
            raise RuntimeError(
                f"{self.name} produced {result.sample_rate} Hz, expected {self.native_rate} Hz"
            )
        pcm = np.frombuffer(result.pcm, dtype="<i2").astype(np.int16)
        rate = self.native_rate
        words = tuple(
            WordSpan(w.start, w.end, w.start_ms * rate // 1000, w.end_ms * rate // 1000)
            for w in result.words
        )
        return Timed(pcm, words)

    async def _run(self, fn: Callable[..., Any], args: tuple) -> Any:
        if self._closed:
            raise RuntimeError(f"{self.name} engine is closed")
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._pool
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                # A worker died (killed, or crashed in the library): every
                # later call on this pool would fail too, so start a new one.
                if attempt == 2 or self._closed:
                    raise
                if pool is self._pool:
                    log.warning("%s worker process died; restarting the pool", self.name)
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start_pool()
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Stop the worker processes, dropping queued calls; waits until they have exited."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


class EspeakEngine(_PoolEngine):
    """Real speech from libespeak-ng, synthesised in a pool of spawned processes.

    The library loads in a few milliseconds; a worker's real start-up cost is
    the interpreter's.
    """

    name = "espeak"
    native_rate = espeak.NATIVE_RATE

    def _warmup(self) -> Callable[[], object]:
        return espeak.initialize

    def _call(self, text: str, voice: Voice, speed: float) -> tuple[Callable[..., Any], tuple]:
        return espeak.synthesize, (
            text,
            voice.espeak_name,
            voice.pitch,
            espeak.wpm_for_speed(speed),
        )

    def _timed_call(
        self, text: str, voice: Voice, speed: float
    ) -> tuple[Callable[..., Any], tuple]:
        return espeak.synthesize_timed, (
            text,
            voice.espeak_name,
            voice.pitch,
            espeak.wpm_for_speed(speed),
        )


class PiperEngine(_PoolEngine):
    """Natural speech from a Piper neural voice, in a pool of spawned processes.

    Each process loads the model once (about a third of a second) and runs it
    on one core.  Every voice speaks with the model's one speaker; text in a
    script it cannot read goes to espeak-ng (see :mod:`local_tts.piper`).
    """

    name = "piper"

    def __init__(self, *, processes: int | None = None, piece_ms: float = 500.0) -> None:
        self.native_rate = piper.sample_rate()  # raises PiperError when the extra is missing
        super().__init__(processes=processes, piece_ms=piece_ms)

    def _initializer(self) -> Callable[[], object]:
        return piper.load

    def _warmup(self) -> Callable[[], object]:
        return piper.initialize

    def _call(self, text: str, voice: Voice, speed: float) -> tuple[Callable[..., Any], tuple]:
        return piper.synthesize, (text, voice.espeak_name, voice.pitch, speed)

    def _timed_call(
        self, text: str, voice: Voice, speed: float
    ) -> tuple[Callable[..., Any], tuple]:
        return piper.synthesize_timed, (text, voice.espeak_name, voice.pitch, speed)


# -- tone --------------------------------------------------------------------

TONE_RATE = 44100
CHAR_MS = 65.0  # audio per character at speed 1.0
_FRAMES_PER_CHAR = 13  # envelope resolution: 5 ms frames at speed 1.0
_PAUSE_FRAMES = {c: 6 for c in ",;:、，；："} | {c: 26 for c in ".!?。！？…"}
_SYLLABLE_HZ = 4.5  # syllables per second at speed 1.0
_SYLLABLES_PER_DRIFT = 5  # one slow pitch rise and fall every five syllables
_DRIFT_DEPTH = 0.06  # ±6 % pitch, like intonation
_PEAK = 0.3 * 32767  # leaves 10 dB of headroom for prosody.volume
_HARMONICS = (1.0, 0.5, 0.28, 0.14, 0.07)


@dataclass(frozen=True)
class _TonePlan:
    """The envelope of one text: per-frame gain and frame centres, and the length in samples."""

    centres: np.ndarray  # sample position of each envelope frame's centre
    gain: np.ndarray  # 0..1 per frame; 0 for spaces, punctuation and pauses
    total_samples: int


def _plan(text: str, speed: float, rate: int) -> _TonePlan:
    gains: list[float] = []
    for ch in text:
        if ch.isalnum():
            # A fixed per-character loudness, so different texts sound different.
            level = 0.65 + 0.35 * (((ord(ch) * 2654435761) >> 8) & 0xFF) / 255
            gains.extend([level] * _FRAMES_PER_CHAR)
        else:
            gains.extend([0.0] * (_FRAMES_PER_CHAR + _PAUSE_FRAMES.get(ch, 0)))
    frame_samples = CHAR_MS / _FRAMES_PER_CHAR / 1000 / speed * rate
    centres = (np.arange(len(gains)) + 0.5) * frame_samples
    return _TonePlan(centres, np.array(gains), round(len(gains) * frame_samples))


@functools.lru_cache(maxsize=128)
def _carrier(tone_hz: float, speed: float, rate: int) -> np.ndarray:
    """One period of the voiced signal: harmonics with pitch drift, times the syllable rhythm.

    Everything in it repeats with the drift period, so the text's audio is this
    loop times the text's envelope: each piece costs a copy and an interpolation
    instead of several transcendental functions per sample.  The pitch is
    rounded so a whole number of cycles fits the loop (a join without a click).
    """
    length = round(rate * _SYLLABLES_PER_DRIFT / (_SYLLABLE_HZ * speed))
    t = np.arange(length) / rate
    drift_hz = rate / length
    cycles = round(tone_hz * length / rate)  # whole pitch cycles per loop
    # Phase of f0(t) = f * (1 + depth * sin(2 pi drift t)), integrated in closed
    # form; the cosine term is back to zero at the end of the loop.
    drift = _DRIFT_DEPTH / (2 * math.pi * drift_hz) * (np.cos(2 * math.pi * drift_hz * t) - 1)
    phase = 2 * math.pi * (cycles * rate / length) * (t - drift)
    wave = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(_HARMONICS))
    wave = np.asarray(wave) / sum(_HARMONICS)
    syllables = 0.55 - 0.45 * np.cos(2 * math.pi * _SYLLABLES_PER_DRIFT * drift_hz * t)
    out = (wave * syllables * _PEAK).astype(np.float32)
    out.flags.writeable = False  # shared by every call through the cache
    return out


class ToneEngine:
    """Speech-shaped tones, cheap to make, paced like a cloud service.

    The first piece of each call comes ``ttfb_ms`` after the call; each next one
    ``rtf`` times its own duration later (``rtf`` = wall time / audio time; 0
    yields as fast as the consumer takes them).  The audio is a pure function
    of text, voice and speed.
    """

    name = "tone"
    native_rate = TONE_RATE

    def __init__(
        self, *, rtf: float = 0.05, ttfb_ms: float = 50.0, piece_ms: float = 500.0
    ) -> None:
        if rtf < 0 or ttfb_ms < 0:
            raise ValueError(f"rtf and ttfb_ms must not be negative (got {rtf}, {ttfb_ms})")
        self.rtf = rtf
        self.ttfb_ms = ttfb_ms
        self.piece_samples = _piece_samples(piece_ms, self.native_rate)

    async def synthesize(self, text: str, voice: Voice, speed: float) -> AsyncIterator[np.ndarray]:
        """Yield the tone rendering of ``text`` piece by piece, on the pacing schedule."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + self.ttfb_ms / 1000
        plan = _plan(text, speed, self.native_rate)
        for start in range(0, plan.total_samples, self.piece_samples):
            stop = min(start + self.piece_samples, plan.total_samples)
            piece = render_tone(plan, voice.tone_hz, speed, start, stop, self.native_rate)
            # Sleep to an absolute schedule so pacing does not drift; a slow
            # consumer makes later pieces due at once, as a buffered service would.
            await asyncio.sleep(max(0.0, due - loop.time()))
            yield piece
            due += (stop - start) / self.native_rate * self.rtf

    async def timed(self, text: str, voice: Voice, speed: float) -> Timed:
        """The paced audio of ``text``, joined, and its words from the pacing model."""
        pieces = [piece async for piece in self.synthesize(text, voice, speed)]
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        return Timed(pcm, tone_words(text, speed, self.native_rate) if pieces else ())

    async def aclose(self) -> None:
        """Nothing to release."""


def tone_words(text: str, speed: float, rate: int) -> tuple[WordSpan, ...]:
    """Where each word (a run without whitespace) sounds in the tone rendering of ``text``.

    The same pacing model as :func:`_plan`: every character takes its frames in
    turn, so a word starts at its first character's first frame and ends after
    its last letter or digit (a pause for punctuation after it is not part of it).
    """
    frame_samples = CHAR_MS / _FRAMES_PER_CHAR / 1000 / speed * rate
    words: list[WordSpan] = []
    frame = 0
    start = first = last = -1
    for i, ch in enumerate(text):
        if ch.isspace() and start >= 0:
            words.append(WordSpan(start, i, first, max(first, last)))
            start = -1
        if not ch.isspace() and start < 0:
            start, first, last = i, round(frame * frame_samples), -1
        frame += _FRAMES_PER_CHAR + (0 if ch.isalnum() else _PAUSE_FRAMES.get(ch, 0))
        if ch.isalnum():
            last = round(frame * frame_samples)
    if start >= 0:
        words.append(WordSpan(start, len(text), first, max(first, last)))
    return tuple(words)


def render_tone(
    plan: _TonePlan, tone_hz: float, speed: float, start: int, stop: int, rate: int
) -> np.ndarray:
    """Samples ``start:stop`` of a plan, as int16; any slice joins seamlessly to its neighbours."""
    carrier = _carrier(tone_hz, speed, rate)
    out = np.empty(stop - start, dtype=np.float32)
    pos, offset = 0, start % len(carrier)
    while pos < len(out):
        take = min(len(carrier) - offset, len(out) - pos)
        out[pos : pos + take] = carrier[offset : offset + take]
        pos, offset = pos + take, 0
    # The per-frame gain, linearly interpolated so that edges ramp over a frame
    # (no clicks at the start and end of words).
    n = np.arange(start, stop, dtype=np.float64)
    out *= np.interp(n, plan.centres, plan.gain, left=0.0, right=0.0)
    return out.astype(np.int16)
