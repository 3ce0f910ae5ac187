"""Stored records stay readable: JSON written by earlier versions loads and dumps the same.

The literals below were dumped by the code before the output models shared a base
(a job's Redis hash, a batch's JSON string, each output alone); they must load into
today's models and dump to the same JSON values.  Also the one billing function.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.batches.model import Batch, CombinedOutput, ManifestOutput
from worker.jobs.model import (
    Output,
    Progress,
    StoredAudio,
    StoredFile,
    billing_for_bytes,
    estimate_billing,
    utf8_bytes,
)
from worker.jobs.store import decode_job, encode_job

OUTPUT = (
    '{"url":"s3://shoal/acme/job_0190f3a2b4c15e8a7c3d9b1f2e4a.mp3","bucket":"shoal",'
    '"key":"acme/job_0190f3a2b4c15e8a7c3d9b1f2e4a.mp3","bytes":33037,"duration_s":2.0,'
    '"format":"mp3","sample_rate":44100,"content_type":"audio/mpeg",'
    '"sha256":"e3ca3871f66a04d8effe84e57f66e5ea5b992cc2050a20b82297f100da633619"}'
)
COMBINED = (
    '{"url":"s3://shoal/acme/bat_0190f3a2b4c177aa33bb44cc55dd/v1/book.m4b",'
    '"key":"acme/bat_0190f3a2b4c177aa33bb44cc55dd/v1/book.m4b","bytes":29006,'
    '"duration_s":3.5,"format":"m4b","sample_rate":44100,"content_type":"audio/mp4",'
    '"sha256":"65268aa437973500023d3c14171d3ee1ae470ad85b9d555a7ba3c01056918f10"}'
)
MANIFEST = (
    '{"url":"s3://shoal/acme/bat_0190f3a2b4c177aa33bb44cc55dd/v1/manifest.json",'
    '"key":"acme/bat_0190f3a2b4c177aa33bb44cc55dd/v1/manifest.json","bytes":612,'
    '"sha256":"3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b"}'
)
# A succeeded job's hash fields, as JobStore.create/transition wrote them.
JOB_HASH = {
    "id": "job_0190f3a2b4c15e8a7c3d9b1f2e4a",
    "tenant": "acme",
    "status": "succeeded",
    "attempts": "1",
    "progress": '{"segments_done":1,"segments_total":1,"chars_done":12,"chars_total":12,'
    '"audio_seconds":2.0}',
    "output": OUTPUT,
    "billing": '{"utf8_bytes":12,"estimated_cost_usd":0.00018}',
    "metadata": "{}",
    "created_at": "1718000000.123",
    "updated_at": "1718000003.5",
    "started_at": "1718000000.5",
    "finished_at": "1718000003.5",
    "callbacks": "[]",
    "request": '{"text":"Hello there.","reference_id":null,"model":null,"format":"mp3",'
    '"sample_rate":null,"bitrate_kbps":null,"prosody":null,"latency":"normal",'
    '"normalize":true,"temperature":0.7,"top_p":0.7,"repetition_penalty":1.2,'
    '"paragraph_silence_ms":null,"output_key":null,"callback_url":null,"priority":0,'
    '"references":[]}',
}
# A built batch, as BatchStore wrote it.
BATCH = (
    '{"id":"bat_0190f3a2b4c177aa33bb44cc55dd","tenant":"acme","items":[{"job_id":'
    '"job_0190f3a2b4c15e8a7c3d9b1f2e4a","title":"One","chars":12,"utf8_bytes":12,'
    '"source":null,"replaced":[]}],"produce":{"chapter_format":"mp3","chapter_sample_rate":'
    'null,"chapter_bitrate_kbps":null,"combined":"m4b","sample_rate":44100,"bitrate_kbps":'
    'null,"chapter_silence_ms":1000,"head_silence_ms":500,"tail_silence_ms":1000,'
    '"loudness":null},"book":{"title":"B","author":null,"language":null,"cover_key":null,'
    '"cover_type":null,"kind":null,"filename":null,"skipped":[]},"defaults":{},'
    '"callback_url":null,"metadata":{},"billing":{"utf8_bytes":12,"estimated_cost_usd":'
    '0.00018},"assembly":{"state":"done","generation":1,"built_generation":1,"combined":'
    f"{COMBINED},"
    f'"manifest":{MANIFEST},'
    '"loudness":null,"error":null,"attempts":1,"started_at":1718000004.0,"finished_at":'
    '1718000006.25},"created_at":1718000000.1,"updated_at":1718000006.25,"canceled_at":null,'
    '"finished_at":1718000006.25}'
)


@pytest.mark.parametrize(
    ("model", "raw"),
    [(Output, OUTPUT), (CombinedOutput, COMBINED), (ManifestOutput, MANIFEST)],
)
def test_each_output_loads_and_dumps_as_before(model: type[StoredFile], raw: str) -> None:
    loaded = model.model_validate_json(raw)
    assert json.loads(loaded.model_dump_json()) == json.loads(raw)
    assert loaded.model_dump(mode="json") == json.loads(raw)


def test_every_output_is_a_stored_file() -> None:
    combined = CombinedOutput.model_validate_json(COMBINED)
    assert isinstance(Output.model_validate_json(OUTPUT), StoredAudio)
    assert isinstance(combined, StoredAudio)
    assert isinstance(ManifestOutput.model_validate_json(MANIFEST), StoredFile)
    # One set of fields: a combined book is an audio file with nothing added.
    assert set(CombinedOutput.model_fields) == set(StoredAudio.model_fields)
    assert set(ManifestOutput.model_fields) == set(StoredFile.model_fields)
    assert set(Output.model_fields) == set(StoredAudio.model_fields) | {"bucket", "captions"}


def test_an_old_job_hash_decodes_and_encodes_the_same() -> None:
    job = decode_job({k.encode(): v.encode() for k, v in JOB_HASH.items()})
    assert job.output is not None and job.output.sha256.startswith("e3ca38")
    again = encode_job(job)
    assert again.keys() == JOB_HASH.keys()
    for name, value in JOB_HASH.items():
        if name == "progress":  # fields added since are written at their defaults
            added = json.loads(again[name]).items() - json.loads(value).items()
            assert dict(added) == {
                k: v for k, v in Progress().model_dump(mode="json").items() if k in dict(added)
            }
            assert json.loads(value).items() <= json.loads(again[name]).items()
        elif value.startswith(("{", "[")):
            assert json.loads(again[name]) == json.loads(value), name
        else:
            assert again[name] == value, name


def test_an_old_batch_loads_and_dumps_the_same() -> None:
    batch = Batch.model_validate_json(BATCH)
    assert batch.assembly.combined is not None and batch.assembly.combined.bytes == 29006
    assert batch.assembly.manifest is not None and batch.assembly.manifest.bytes == 612
    assert json.loads(batch.model_dump_json()) == json.loads(BATCH)


def test_utf8_bytes() -> None:
    assert utf8_bytes("") == 0
    assert utf8_bytes("abc") == 3
    assert utf8_bytes("naïve") == 6
    assert utf8_bytes("你好") == 6
    assert utf8_bytes("👍") == 4
    assert utf8_bytes("\ud800") == 3  # a lone surrogate is counted, not an error


def test_billing_is_by_the_million_bytes() -> None:
    assert billing_for_bytes(1_000_000, 15.0).estimated_cost_usd == 15.0
    assert billing_for_bytes(12, 15.0).model_dump() == {
        "utf8_bytes": 12,
        "estimated_cost_usd": 0.00018,
    }
    assert billing_for_bytes(1, 1.0).estimated_cost_usd == 0.000001  # rounded to 1e-6 USD
    assert billing_for_bytes(0, 15.0).estimated_cost_usd == 0.0


@given(st.text(), st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_a_text_is_billed_by_its_bytes(text: str, price: float) -> None:
    assert estimate_billing(text, price) == billing_for_bytes(utf8_bytes(text), price)
