"""A ctypes binding to libespeak-ng, from the ``espeakng-loader`` wheel.

libespeak-ng keeps its state in globals and is not thread-safe, so this module
must only be used from worker processes that call it from one thread (the
espeak engine runs it in a process pool, see :mod:`local_tts.engines`).  A lock
guards against accidental use from several threads of one process anyway.

Each call loads the library afresh, in synchronous retrieval mode, and unloads
it afterwards (see :class:`_Library` for why): :func:`synthesize` returns only
when all the audio has been collected by the synth callback.

:func:`synthesize_timed` also keeps the library's WORD and END events, which
say where each word starts in the text (``text_position``, 1-based characters)
and in the audio (``audio_position``, ms), for timestamped synthesis.

Exceptions::

    EspeakError            the library could not load, initialise or synthesise
"""

from __future__ import annotations

import _ctypes
import ctypes
import logging
import threading
import unicodedata
from typing import NamedTuple

log = logging.getLogger(__name__)

#: The rate libespeak-ng produces for every built-in (non-MBROLA) voice.
NATIVE_RATE = 22050

#: espeak-ng's accepted speaking rates in words per minute (speak_lib.h).
RATE_MIN_WPM = 80
RATE_MAX_WPM = 450
RATE_NORMAL_WPM = 175

# Constants from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data dir calls exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5  # end of a clause or sentence
_EVENT_MSG_TERMINATED = 6

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h); the union ``id`` is 8 bytes."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded, initialised, or could not synthesise."""


class Synthesis(NamedTuple):
    """The audio of one call: s16le mono PCM and its sample rate."""

    pcm: bytes
    sample_rate: int


class Word(NamedTuple):
    """Where espeak-ng put one word: characters ``start:end`` of the text, ms in the audio."""

    start: int
    end: int
    start_ms: int
    end_ms: int


class TimedSynthesis(NamedTuple):
    """The audio of one call and where each of its words is."""

    pcm: bytes
    sample_rate: int
    words: tuple[Word, ...]


class _Library:
    """One load of libespeak-ng, initialised and ready to speak; :meth:`unload` ends it.

    The library keeps state between utterances in function-local statics (its
    pitch-flutter position, among others), so the same call made twice gives
    audibly the same but not the same samples.  Loading it afresh for every
    call, which ``dlclose`` makes possible, costs about 2 ms and makes the
    audio a pure function of the arguments.
    """

    def __init__(self, path: str, data_path: bytes) -> None:
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        self.lib: ctypes.CDLL | None = lib
        self._chunks: list[bytes] = []
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            self.unload()
            raise EspeakError(f"espeak_Initialize failed (returned {rate})")
        self.sample_rate = rate
        lib.espeak_SetSynthCallback(_callback)

    def speak(self, text: str, voice: str, pitch: int, wpm: int) -> bytes:
        """All the audio of ``text`` (synchronous mode: returns when it is done)."""
        lib = self._loaded()
        err = lib.espeak_SetVoiceByName(voice.encode())
        if err != _EE_OK:
            raise EspeakError(f"espeak-ng has no voice {voice!r} (error {err})")
        for param, value in ((_PARAM_RATE, wpm), (_PARAM_PITCH, pitch)):
            err = lib.espeak_SetParameter(param, value, 0)
            if err != _EE_OK:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed (error {err})")
        data = text.encode("utf-8") + b"\0"
        _sink.append(self._chunks)
        try:
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            _sink.pop()
        if err != _EE_OK:
            raise EspeakError(f"espeak_Synth failed (error {err})")
        return b"".join(self._chunks)

    def unload(self) -> None:
        """Free the library's memory and unload it, so the next load starts from scratch."""
        lib, self.lib = self.lib, None
        if lib is None:
            return
        lib.espeak_Terminate()
        close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
        if close is not None:  # without it the next load reuses this one's state
            close(lib._handle)

    def _loaded(self) -> ctypes.CDLL:
        if self.lib is None:
            raise EspeakError("libespeak-ng was unloaded")
        return self.lib


def _on_audio(wav: ctypes._Pointer[ctypes.c_short], count: int, events: int) -> int:
    # wav is NULL at the end of synthesis; count may be 0 mid-way.
    if wav and count > 0 and _sink:
        _sink[-1].append(ctypes.string_at(wav, count * 2))
    if events and _marks:
        array = ctypes.cast(events, ctypes.POINTER(_Event))
        i = 0
        while array[i].type != _EVENT_LIST_TERMINATED:
            event = array[i]
            if event.type in (_EVENT_WORD, _EVENT_END, _EVENT_MSG_TERMINATED):
                _marks[-1].append(
                    (event.type, event.text_position, event.length, event.audio_position)
                )
            i += 1
    return 0  # 0 = continue


# One trampoline for the process's lifetime: the library may call it until it
# is unloaded, and ctypes frees a trampoline when its object is collected.
_callback = _SynthCallback(_on_audio)
_sink: list[list[bytes]] = []  # where the callback puts audio during espeak_Synth
# Where it puts (type, text_position, length, audio_position) during synthesize_timed.
_marks: list[list[tuple[int, int, int, int]]] = []
_lock = threading.Lock()
_paths: tuple[str, bytes] | None = None


def _library() -> _Library:
    global _paths
    if _paths is None:
        import espeakng_loader  # imported here: only worker processes need it

        _paths = (espeakng_loader.get_library_path(), espeakng_loader.get_data_path().encode())
    return _Library(*_paths)


def initialize() -> int:
    """Check that libespeak-ng loads and initialises here; return its sample rate.

    A warm-up: it pulls the library and its data into the page cache, so the
    first real call is as fast as the rest (a few milliseconds).
    """
    with _lock:
        library = _library()
        library.unload()
        return library.sample_rate


def synthesize(
    text: str, espeak_name: str, pitch: int = 50, wpm: int = RATE_NORMAL_WPM
) -> Synthesis:
    """Speak ``text`` with the espeak-ng voice ``espeak_name``; return s16le mono PCM and its rate.

    The language part of ``espeak_name`` is replaced when the text is mostly in
    another script (see :func:`language_for`), keeping the variant, so Chinese
    is spoken as Chinese rather than read out as letter names.  ``pitch`` is
    clamped to 0..100 and ``wpm`` to espeak-ng's range.  The result depends on
    the arguments only.  Calls in one process are serialised; the library must
    not be used by anything else in the process.
    """
    text = text.replace("\0", " ")
    language, plus, variant = espeak_name.partition("+")
    voice = language_for(text, language) + plus + variant
    with _lock:
        library = _library()
        try:
            if not text.strip():
                return Synthesis(b"", library.sample_rate)
            pcm = library.speak(text, voice, clamp_pitch(pitch), clamp_wpm(wpm))
        finally:
            library.unload()
    return Synthesis(pcm, library.sample_rate)


def synthesize_timed(
    text: str, espeak_name: str, pitch: int = 50, wpm: int = RATE_NORMAL_WPM
) -> TimedSynthesis:
    """:func:`synthesize`, plus where each word starts and ends, as espeak-ng reported it.

    A word starts at its WORD event and ends at the next WORD or clause END
    event (so a pause after a clause is not part of its last word), the last
    one at the end of the audio.  Character offsets index ``text`` as given.
    """
    events: list[tuple[int, int, int, int]] = []
    _marks.append(events)
    try:
        result = synthesize(text, espeak_name, pitch, wpm)
    finally:
        _marks.pop()
    total_ms = len(result.pcm) // 2 * 1000 // result.sample_rate
    return TimedSynthesis(result.pcm, result.sample_rate, _words(events, len(text), total_ms))


def _words(
    events: list[tuple[int, int, int, int]], text_len: int, total_ms: int
) -> tuple[Word, ...]:
    words: list[Word] = []
    for i, (kind, position, length, start_ms) in enumerate(events):
        if kind != _EVENT_WORD or length <= 0:
            continue
        end_ms = min(next((ev[3] for ev in events[i + 1 :]), total_ms), total_ms)
        start = max(0, min(text_len, position - 1))  # text_position counts from 1
        end = max(start, min(text_len, start + length))
        if words and start < words[-1].end:
            # A number or an abbreviation is spoken as several words, each
            # reported inside the written one: they extend it.
            words[-1] = words[-1]._replace(end_ms=max(words[-1].end_ms, end_ms))
            continue
        start_ms = min(start_ms, total_ms)
        words.append(Word(start, end, start_ms, max(start_ms, end_ms)))
    return tuple(words)


def wpm_for_speed(speed: float) -> int:
    """Words per minute for a prosody speed (1.0 = espeak-ng's normal 175), clamped."""
    return clamp_wpm(round(RATE_NORMAL_WPM * speed))


def clamp_wpm(wpm: int) -> int:
    """``wpm`` limited to what espeak-ng accepts."""
    return max(RATE_MIN_WPM, min(RATE_MAX_WPM, int(wpm)))


def clamp_pitch(pitch: int) -> int:
    """``pitch`` limited to espeak-ng's 0..100."""
    return max(0, min(100, int(pitch)))


# Scripts that espeak-ng's default (Latin) voices cannot read, and the language
# that can.  Ranges are (first, last) code points; the first match wins.
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x3040, 0x30FF, "ja"),  # hiragana, katakana
    (0x31F0, 0x31FF, "ja"),  # katakana phonetic extensions
    (0x3400, 0x4DBF, "cmn"),  # CJK extension A
    (0x4E00, 0x9FFF, "cmn"),  # CJK unified ideographs
    (0xF900, 0xFAFF, "cmn"),  # CJK compatibility ideographs
    (0x20000, 0x2FFFF, "cmn"),  # CJK extensions B and later
    (0x1100, 0x11FF, "ko"),  # hangul jamo
    (0x3130, 0x318F, "ko"),  # hangul compatibility jamo
    (0xAC00, 0xD7AF, "ko"),  # hangul syllables
    (0x0370, 0x03FF, "el"),  # greek
    (0x0400, 0x04FF, "ru"),  # cyrillic
    (0x0590, 0x05FF, "he"),  # hebrew
    (0x0600, 0x06FF, "ar"),  # arabic
    (0x0900, 0x097F, "hi"),  # devanagari
    (0x0E00, 0x0E7F, "th"),  # thai
)


def language_for(text: str, default: str) -> str:
    """The espeak-ng language for ``text``: the script most of its letters are in.

    Letters outside every listed script (Latin and the rest) count for
    ``default``.  Japanese text mixes kanji and kana, so any kana makes Han
    characters count as Japanese.
    """
    counts: dict[str, int] = {}
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue  # digits, spaces and punctuation say nothing about the language
        lang = _script_language(ord(ch)) or default
        counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return default
    if counts.get("ja") and counts.get("cmn"):
        counts["ja"] += counts.pop("cmn")
    # Ties go to the default: it is the voice the caller asked for.
    return max(counts, key=lambda lang: (counts[lang], lang == default))


def _script_language(code: int) -> str | None:
    for first, last, lang in _SCRIPTS:
        if first <= code <= last:
            return lang
    return None
