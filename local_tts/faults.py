"""Scripted and seeded-random fault injection.

A plan is JSON, given with ``--faults`` or ``POST /_admin/faults``::

    {"rules": [
        {"action": "reject", "status": 500, "session": 1},
        {"action": "drop", "session": 2, "after_audio": 3},
        {"action": "finish_error", "after_audio": 0, "message": "boom"},
        {"action": "stall", "session": 1, "after_audio": 1, "pings": false},
        {"action": "close", "session": 1, "after_audio": 2, "code": 1000},
        {"action": "truncate", "session": 3, "after_audio": 2}],
     "random": {"seed": 7, "drop": 0.1, "finish_error": 0.1, "reject": 0.05}}

``session`` is the 1-based ordinal of the handshake since the plan was
installed (every handshake counts, rejected or not); without it a rule applies
to every session.  ``after_audio`` fires once that many ``audio`` events of the
session have been sent (checked before each further audio event and before
``finish``).

``truncate`` is the quiet one: after ``after_audio`` audio events the rest of
the session's audio is dropped, and the session still ends normally with
``finish``/``stop`` — a provider that loses audio without saying so.
``unaligned`` is quiet too, on the timestamped endpoint only (the live socket
has no timings, and ignores it): the rest of the reply's events carry their
audio with ``"alignment": null`` — timings that come back incomplete.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FaultAction(StrEnum):
    """What a fault does to a session."""

    REJECT = "reject"  # answer the handshake with an HTTP status instead of 101
    DROP = "drop"  # abort the TCP connection: no finish, no close frame
    FINISH_ERROR = "finish_error"  # send finish/error with a message, then close
    STALL = "stall"  # go silent; with pings=false stop answering pings too
    CLOSE = "close"  # send a close frame before finish
    TRUNCATE = "truncate"  # drop the rest of the audio, then finish/stop as if all was sent
    UNALIGNED = "unaligned"  # timestamped replies only: the rest of the audio without timings


class FaultPlanError(ValueError):
    """A fault plan that cannot be parsed; the message names the bad part."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault that applies to a session."""

    action: FaultAction
    after_audio: int = 0
    status: int = 500
    message: str = "injected fault"
    pings: bool = True
    code: int = 1000


@dataclass(frozen=True, slots=True)
class _Rule:
    fault: Fault
    session: int | None


@dataclass(frozen=True, slots=True)
class _Random:
    seed: int
    drop: float = 0.0
    finish_error: float = 0.0
    reject: float = 0.0


class FaultPlan:
    """The installed plan; hands each new handshake the faults that apply to it."""

    def __init__(self, rules: list[_Rule] | None = None, rand: _Random | None = None) -> None:
        self._rules = rules or []
        self._random = rand
        self._rng = random.Random(rand.seed if rand else 0)
        self._handshakes = 0
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, data: str | bytes | dict[str, Any] | None) -> FaultPlan:
        """Build a plan from JSON text or a decoded map; ``None`` or ``{}`` is no faults."""
        if data is None:
            return cls()
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data or "{}")
            except json.JSONDecodeError as exc:
                raise FaultPlanError(f"fault plan is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise FaultPlanError("fault plan must be a JSON object with 'rules' and/or 'random'")
        unknown = set(data) - {"rules", "random"}
        if unknown:
            raise FaultPlanError(f"unknown fault plan keys: {', '.join(sorted(unknown))}")
        rules = [_parse_rule(i, r) for i, r in enumerate(data.get("rules") or [])]
        rand = _parse_random(data["random"]) if data.get("random") else None
        return cls(rules, rand)

    def next_session(self) -> list[Fault]:
        """Count one handshake and return the faults for it, in rule order."""
        with self._lock:
            self._handshakes += 1
            n = self._handshakes
            faults = [r.fault for r in self._rules if r.session in (None, n)]
            if self._random:
                faults.extend(self._draw(self._random))
        return faults

    def _draw(self, rnd: _Random) -> list[Fault]:
        out = []
        if self._rng.random() < rnd.reject:
            out.append(Fault(FaultAction.REJECT, status=self._rng.choice((429, 500, 503))))
        if self._rng.random() < rnd.drop:
            out.append(Fault(FaultAction.DROP, after_audio=self._rng.randint(0, 3)))
        if self._rng.random() < rnd.finish_error:
            out.append(
                Fault(
                    FaultAction.FINISH_ERROR,
                    after_audio=self._rng.randint(0, 3),
                    message="injected random fault",
                )
            )
        return out


def _parse_rule(i: int, raw: Any) -> _Rule:
    where = f"rules[{i}]"
    if not isinstance(raw, dict):
        raise FaultPlanError(f"{where} must be an object")
    known = {"action", "session", "after_audio", "status", "message", "pings", "code"}
    unknown = set(raw) - known
    if unknown:
        raise FaultPlanError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    try:
        action = FaultAction(str(raw.get("action")))
    except ValueError:
        names = ", ".join(a.value for a in FaultAction)
        raise FaultPlanError(f"{where}.action must be one of {names}") from None
    session = raw.get("session")
    if session is not None and (not isinstance(session, int) or session < 1):
        raise FaultPlanError(f"{where}.session must be a positive integer")
    after = raw.get("after_audio", 0)
    if not isinstance(after, int) or after < 0:
        raise FaultPlanError(f"{where}.after_audio must be a non-negative integer")
    status = raw.get("status", 500)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise FaultPlanError(f"{where}.status must be an HTTP error status (400-599)")
    code = raw.get("code", 1000)
    if not isinstance(code, int) or not 1000 <= code <= 4999:
        raise FaultPlanError(f"{where}.code must be a WebSocket close code (1000-4999)")
    fault = Fault(
        action=action,
        after_audio=after,
        status=status,
        message=str(raw.get("message", "injected fault")),
        pings=bool(raw.get("pings", True)),
        code=code,
    )
    return _Rule(fault, session)


def _parse_random(raw: Any) -> _Random:
    if not isinstance(raw, dict) or not isinstance(raw.get("seed"), int):
        raise FaultPlanError("random must be an object with an integer 'seed'")
    probs = {}
    for key in ("drop", "finish_error", "reject"):
        p = raw.get(key, 0.0)
        if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise FaultPlanError(f"random.{key} must be a probability between 0 and 1")
        probs[key] = float(p)
    return _Random(seed=raw["seed"], **probs)
