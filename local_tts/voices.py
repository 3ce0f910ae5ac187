"""Voices: a fixed, deterministic mapping from a request's voice to an engine voice.

Fish Audio picks a voice from ``reference_id`` (a voice model id) or from
``references`` (zero-shot cloning from audio bytes).  The offline server has no
model to clone with, so it maps either to one of a fixed set of espeak-ng
variants and pitches instead.  The mapping is a pure function of the request:

- the same ``reference_id`` always gives the same voice (for a list, the first
  id is used: multi-speaker requests speak with their first speaker);
- the same reference audio bytes always give the same voice (they are hashed,
  never decoded, so unreadable audio still maps to a voice);
- different ids usually give different voices (there are :data:`VOICE_COUNT`);
- no reference at all gives :data:`DEFAULT_VOICE`.

Voice models (``POST /model``, local_tts.models) get an id chosen by
:func:`id_for_voice` so that it maps to the voice of their reference audio:
a model sounds exactly like the same audio sent inline as ``references``.

The mapping must never change between releases without a reason: tests and
users compare audio for a given id.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from worker.fish.request import TTSRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Voice:
    """One engine voice: the espeak-ng voice name and pitch, and a pitch for the tone engine."""

    key: str  # stable id, e.g. "m3-p40"; the same key always sounds the same
    espeak_name: str  # espeak-ng voice: language plus variant, e.g. "en-us+m3"
    pitch: int  # espeak-ng base pitch, 0..100 (50 is the variant's normal)
    tone_hz: float  # base pitch of the tone engine, in Hz

    @property
    def variant(self) -> str:
        """The espeak-ng variant suffix (``"+m3"``), or ``""`` for the plain language voice."""
        _lang, plus, variant = self.espeak_name.partition("+")
        return plus + variant

    @property
    def language(self) -> str:
        """The espeak-ng language of this voice (``"en-us"``)."""
        return self.espeak_name.partition("+")[0]


#: Language used for every voice unless the text's script asks for another.
LANGUAGE = "en-us"

# Variants every espeak-ng build ships (espeak-ng-data/voices/!v), grouped so
# each gets pitches that suit it.  The numbers are typical speaking pitches.
_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE = ("f1", "f2", "f3", "f4", "f5")
_MALE_PITCHES = ((30, 100.0), (40, 115.0), (55, 130.0))
_FEMALE_PITCHES = ((45, 185.0), (55, 210.0), (65, 235.0))


def _build_voices() -> tuple[Voice, ...]:
    voices: list[Voice] = []
    for variants, pitches in ((_MALE, _MALE_PITCHES), (_FEMALE, _FEMALE_PITCHES)):
        for variant in variants:
            for pitch, tone_hz in pitches:
                voices.append(
                    Voice(
                        key=f"{variant}-p{pitch}",
                        espeak_name=f"{LANGUAGE}+{variant}",
                        pitch=pitch,
                        # A small per-variant offset keeps tone voices apart too.
                        tone_hz=tone_hz + 3.0 * (len(voices) % 5),
                    )
                )
    return tuple(voices)


#: Every voice a reference can map to, in a fixed order (the order is part of the mapping).
VOICES: tuple[Voice, ...] = _build_voices()
VOICE_COUNT = len(VOICES)

#: The voice of a request with no reference: espeak-ng's plain language voice.
DEFAULT_VOICE = Voice(key="default", espeak_name=LANGUAGE, pitch=50, tone_hz=120.0)


def voice_for_id(reference_id: str) -> Voice:
    """The voice a ``reference_id`` maps to; a pure function of the id."""
    return _voice_for_digest(hashlib.sha256(b"id\0" + reference_id.encode("utf-8")).digest())


def voice_for_audio(audios: list[bytes]) -> Voice:
    """The voice reference audio maps to; a pure function of the bytes, in order."""
    h = hashlib.sha256(b"audio\0")
    for audio in audios:
        # Length prefixes keep [b"ab", b"c"] and [b"a", b"bc"] apart.
        h.update(len(audio).to_bytes(8, "little"))
        h.update(audio)
    return _voice_for_digest(h.digest())


def pick_voice(request: TTSRequest) -> Voice:
    """The voice for a request: by ``reference_id`` first, then ``references``, else the default.

    Deterministic across processes and restarts (hashlib, not ``hash()``).
    Reference audio is hashed, never decoded.
    """
    ref_id = request.reference_id
    if isinstance(ref_id, list):
        ref_id = ref_id[0] if ref_id else None
    if ref_id:
        return voice_for_id(ref_id)
    references = request.flat_references
    if references:
        return voice_for_audio([ref.audio for ref in references])
    return DEFAULT_VOICE


def id_for_voice(voice: Voice, seed: bytes) -> str:
    """A 32-hex model id that :func:`voice_for_id` maps to ``voice``; a pure function of both.

    Voice models get ids chosen this way, so an id keeps its voice without a
    lookup: in every session, and after the server that made it restarts.
    Candidates are hashes of the seed and a counter; about :data:`VOICE_COUNT`
    are tried before one maps to the voice.
    """
    if voice not in VOICES:
        raise ValueError(f"no id maps to voice {voice.key!r}")
    counter = 0
    while True:
        candidate = hashlib.sha256(seed + counter.to_bytes(8, "little")).hexdigest()[:32]
        if voice_for_id(candidate) == voice:
            return candidate
        counter += 1


def _voice_for_digest(digest: bytes) -> Voice:
    return VOICES[int.from_bytes(digest[:8], "big") % VOICE_COUNT]
