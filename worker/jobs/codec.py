"""A job record as a Redis hash, and back (pure).

Scalar fields are strings and nested values (request, progress, output, error,
billing, metadata, callbacks) JSON; ``None`` values are left out.  Reference
audio is arbitrary bytes, which JSON cannot carry: it is base64 in the request.
A stored hash that does not decode is a :class:`~worker.jobs.errors.CorruptJobRecord`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from worker.jobs.errors import CorruptJobRecord
from worker.jobs.model import Job, JobRequest, ReferenceClip
from worker.keys import decoded

__all__ = ["decode_job", "encode_job"]

_JSON_FIELDS = ("request", "progress", "output", "error", "billing", "metadata", "callbacks")


def _dump_request(request: JobRequest) -> str:
    # Reference audio is arbitrary bytes, which JSON cannot carry: base64 it.
    data = request.model_dump(mode="json", exclude={"references", "passage_voices"})
    data["references"] = _dump_clips(request.references)
    if request.passage_voices:
        data["passage_voices"] = {
            name: {"reference_id": voice.reference_id, "references": _dump_clips(voice.references)}
            for name, voice in request.passage_voices.items()
        }
    return json.dumps(data, separators=(",", ":"))


def _dump_clips(clips: Sequence[ReferenceClip]) -> list[dict[str, str]]:
    return [{"audio": base64.b64encode(c.audio).decode(), "text": c.text} for c in clips]


def _load_request(raw: str) -> JobRequest:
    data = json.loads(raw)
    holders = [data, *data.get("passage_voices", {}).values()]
    for holder in holders:
        for ref in holder.get("references", []):
            ref["audio"] = base64.b64decode(ref["audio"])
    return JobRequest.model_validate(data)


def encode_job(job: Job) -> dict[str, str]:
    """The hash fields of a job record; ``None`` values are left out."""
    fields: dict[str, str] = {}
    for name, value in job.model_dump(mode="json", exclude={"request"}).items():
        if value is None:
            continue
        fields[name] = (
            json.dumps(value, separators=(",", ":")) if name in _JSON_FIELDS else str(value)
        )
    fields["request"] = _dump_request(job.request)
    return fields


def decode_job(raw: dict[Any, Any]) -> Job:
    """A :class:`Job` from its hash fields (bytes or str)."""
    fields = {decoded(k): decoded(v) for k, v in raw.items()}
    try:
        data: dict[str, Any] = {
            name: json.loads(value) if name in _JSON_FIELDS else value
            for name, value in fields.items()
            if name != "request"
        }
        data["request"] = _load_request(fields["request"])
        return Job.model_validate(data)
    except (KeyError, ValueError, ValidationError) as exc:
        raise CorruptJobRecord(f"job {fields.get('id', '?')}: {exc}") from exc
