"""Voices over HTTP: upload, list, show, change, delete per tenant; jobs that name them.

The ``idle`` stack has no worker (jobs stay queued and their records can be
read); the ``live`` test runs a job through a real worker and local_tts and
reads the references local_tts received.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import ApiEnv, all_tenants
from tests.api.server import ApiServer, api_settings, queued_messages
from tests.api.test_e2e import poll
from tests.api.test_lexicons import shoal
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stacks
from worker.jobs.model import ErrorCode, JobStatus


def wav(seconds: float, freq: float = 220.0, amplitude: float = 0.3, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of a tone (``amplitude`` 0 is silence)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


A, B = wav(3.5, 220.0), wav(4.0, 330.0)


def upload(
    http: httpx.Client,
    files: list[bytes],
    texts: list[str] | None = None,
    **fields: str,
) -> httpx.Response:
    form: dict[str, str | list[str]] = {"title": "Narrator", **fields}
    if texts is not None:
        form["texts"] = texts
    parts = [("files", (f"take{i}.wav", data, "audio/wav")) for i, data in enumerate(files)]
    return http.post("/v1/voices", data=form, files=parts)


def objects(env: ApiEnv, tenant: str) -> list[str]:
    storage = env.stack.storage
    reply = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=f"{tenant}/voices/")
    return [item["Key"] for item in reply.get("Contents", ())]


def test_create_list_show_patch_delete(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        made = upload(http, [A, B], ["First take.", "Second take."], tags="warm, en", language="en")
        assert made.status_code == 201, made.text
        voice = made.json()
        assert made.headers["location"] == f"/v1/voices/{voice['id']}"
        assert voice["title"] == "Narrator" and voice["state"] == "ready"
        assert voice["sample_count"] == 2 and voice["seconds"] == 7.5
        assert voice["tags"] == ["warm", "en"] and voice["language"] == "en"
        assert len(objects(idle, "t1")) >= 2

        shown = http.get(f"/v1/voices/{voice['id']}").json()
        assert [s["text"] for s in shown["samples"]] == ["First take.", "Second take."]
        first = httpx.get(shown["samples"][0]["download_url"])
        assert first.status_code == 200 and first.content == A

        other = upload(http, [B], title="Other").json()
        ids = [v["id"] for v in http.get("/v1/voices").json()["data"]]
        assert ids.index(other["id"]) < ids.index(voice["id"])  # newest first
        assert [v["id"] for v in http.get("/v1/voices?tag=warm").json()["data"]] == [voice["id"]]
        assert [v["id"] for v in http.get("/v1/voices?title=oth").json()["data"]] == [other["id"]]
        page = http.get("/v1/voices?limit=1").json()
        assert len(page["data"]) == 1 and page["next_cursor"] == page["data"][0]["id"]
        rest = http.get(f"/v1/voices?limit=1&cursor={page['next_cursor']}").json()
        assert rest["data"][0]["id"] != page["data"][0]["id"]

        patched = http.patch(f"/v1/voices/{voice['id']}", json={"title": "Renamed", "tags": []})
        assert patched.status_code == 200, patched.text
        assert patched.json()["title"] == "Renamed" and patched.json()["tags"] == []
        assert patched.json()["description"] == ""  # left out, so unchanged

        assert http.delete(f"/v1/voices/{voice['id']}").status_code == 204
        assert http.get(f"/v1/voices/{voice['id']}").status_code == 404
        assert http.delete(f"/v1/voices/{voice['id']}").status_code == 404
        assert not [k for k in objects(idle, "t1") if voice["id"] in k]


def test_another_tenants_voice_is_not_found(idle: ApiEnv) -> None:
    with idle.client("t1") as mine, idle.client("t2") as theirs:
        voice = upload(mine, [A]).json()
        path = f"/v1/voices/{voice['id']}"
        assert theirs.get(path).status_code == 404
        assert theirs.patch(path, json={"title": "x"}).status_code == 404
        assert theirs.delete(path).status_code == 404
        assert theirs.post(f"{path}/preview").status_code == 404
        assert voice["id"] not in [v["id"] for v in theirs.get("/v1/voices").json()["data"]]
        before = queued_messages(idle.stack)
        refused = theirs.post("/v1/jobs", json={"text": "Hello.", "voice": voice["id"]})
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "voice"
        assert queued_messages(idle.stack) == before
        assert mine.get(path).json()["title"] == "Narrator"  # untouched


def test_bad_uploads_name_the_field_and_store_nothing(idle: ApiEnv) -> None:
    cases: list[tuple[list[bytes], list[str] | None, str]] = [
        ([A, b"not audio at all" * 100], None, "files.1"),
        ([A, wav(4.0, amplitude=0.0)], None, "files.1"),  # silence
        ([wav(1.0)], None, "files.0"),  # too short
        ([A, wav(61.0)], None, "files.1"),  # too long
        ([A] * 21, None, "files"),  # too many
        ([A, B], ["only one transcript"], "texts"),
    ]
    with idle.client("list") as http:
        for files, texts, field in cases:
            refused = upload(http, files, texts)
            assert refused.status_code == 422, (field, refused.text)
            assert refused.json()["error"]["field"] == field, refused.text
        blank = upload(http, [A], title="   ")
        assert blank.status_code == 422 and blank.json()["error"]["field"] == "title"
        assert http.get("/v1/voices").json()["data"] == []
    assert objects(idle, "list") == []


def test_a_job_naming_a_voice_carries_its_samples(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        voice = upload(http, [A, B], ["one", "two"]).json()
        made = http.post("/v1/jobs", json={"text": "Hello there.", "voice": voice["id"]})
        assert made.status_code == 202, made.text
        assert made.json()["request"]["voice"] == voice["id"]
        assert made.json()["request"]["references"] == 2
        job = idle.stack.store.get(made.json()["id"])
        assert job is not None and job.request.voice == voice["id"]
        assert [(r.audio, r.text) for r in job.request.references] == [(A, "one"), (B, "two")]

        plain = idle.stack.store.get(http.post("/v1/jobs", json={"text": "Hi."}).json()["id"])
        assert plain is not None and "voice" not in plain.request.model_dump()

        unknown = http.post("/v1/jobs", json={"text": "Hi.", "voice": "voice_nope"})
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "voice"
        both = http.post(
            "/v1/jobs", json={"text": "Hi.", "voice": voice["id"], "reference_id": "abc"}
        )
        assert both.status_code == 422 and both.json()["error"]["field"] == "voice"


def test_a_voice_reaches_local_tts_as_references(live: ApiEnv) -> None:
    with live.client("voice") as http:
        voice = upload(http, [A, B], ["Voice one.", "Voice two."]).json()
        made = http.post("/v1/jobs", json={"text": "Narrated in a voice.", "voice": voice["id"]})
        assert made.status_code == 202, made.text
        done = poll(http, made.json()["id"])
        assert done["status"] == JobStatus.SUCCEEDED.value, done
    sessions = [s for s in live.stack.tts.stats()["sessions"] if "in a voice" in s["text"]]
    assert sessions
    assert sessions[-1]["references"] == [
        {"sha256": hashlib.sha256(A).hexdigest(), "bytes": len(A), "text": "Voice one."},
        {"sha256": hashlib.sha256(B).hexdigest(), "bytes": len(B), "text": "Voice two."},
    ]


def test_batches_take_a_voice_in_defaults_and_items(idle: ApiEnv) -> None:
    with idle.client("idem") as http:
        first = upload(http, [A], ["one"]).json()
        second = upload(http, [B], ["two"]).json()
        items = [
            {"title": "Default", "text": "Spoken in the default voice."},
            {"title": "Own", "text": "Spoken in its own voice.", "voice": second["id"]},
        ]
        before = queued_messages(idle.stack)
        for defaults, bad, field in [
            ({"voice": "voice_nope"}, items, "defaults.voice"),
            ({"voice": first["id"]}, [items[0], {**items[1], "voice": "x"}], "items.1.voice"),
            ({"voice": first["id"], "reference_id": "abc"}, items, "defaults.voice"),
        ]:
            refused = http.post("/v1/batches", json={"defaults": defaults, "items": bad})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["field"] == field
        assert queued_messages(idle.stack) == before

        made = http.post("/v1/batches", json={"defaults": {"voice": first["id"]}, "items": items})
        assert made.status_code == 202, made.text
        jobs = [idle.stack.store.get(item["job_id"]) for item in made.json()["items"]]
        assert [(j.request.voice, [r.audio for r in j.request.references]) for j in jobs if j] == [
            (first["id"], [A]),
            (second["id"], [B]),
        ]
        # A retry may name another voice for the new rendering.
        assert jobs[0] is not None and idle.stack.store.transition(jobs[0].id, JobStatus.FAILED)
        retry = f"/v1/batches/{made.json()['id']}/items/0/retry"
        retried = http.post(retry, json={"voice": second["id"]})
        assert retried.status_code == 202, retried.text
        again = idle.stack.store.get(retried.json()["items"][0]["job_id"])
        assert again is not None and again.request.voice == second["id"]
        assert [r.audio for r in again.request.references] == [B]


def test_a_book_is_narrated_in_a_voice(live: ApiEnv) -> None:
    book = b"# The Quest\n\nShe set out at dawn.\n\n# The Return\n\nShe came home at dusk.\n"
    with live.client("voice") as http:
        voice = upload(http, [B], ["A book voice."]).json()
        options = json.dumps({"defaults": {"voice": voice["id"]}})
        files = {"file": ("quest.md", book, "text/markdown")}
        made = http.post("/v1/books", files=files, data={"options": options})
        assert made.status_code == 202, made.text
        for item in made.json()["batch"]["items"]:
            assert poll(http, item["job_id"])["status"] == JobStatus.SUCCEEDED.value
    sessions = [s for s in live.stack.tts.stats()["sessions"] if "She " in s["text"]]
    assert len(sessions) >= 2
    sample = {"sha256": hashlib.sha256(B).hexdigest(), "bytes": len(B), "text": "A book voice."}
    assert all(s["references"] == [sample] for s in sessions)


def test_a_queued_job_whose_voice_is_deleted_fails_with_a_clear_code(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path
) -> None:
    # A stack of its own: the job waits queued (no worker) while its voice is deleted.
    with Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make:
        stack = make(api_tts)
        with ApiServer(api_settings(stack, all_tenants())) as api, api.client("key-t1") as http:
            voice = upload(http, [A]).json()
            queued = http.post("/v1/jobs", json={"text": "Too late.", "voice": voice["id"]})
            assert queued.status_code == 202, queued.text
            assert http.delete(f"/v1/voices/{voice['id']}").status_code == 204
            stack.start_worker(concurrency=1)
            job = poll(http, queued.json()["id"])
    assert job["status"] == JobStatus.FAILED.value
    assert job["error"]["code"] == ErrorCode.VOICE_DELETED.value
    assert voice["id"] in job["error"]["message"]
    assert not [s for s in api_tts.stats()["sessions"] if "Too late" in s["text"]]


def test_with_voice_models_a_voice_is_a_provider_model_sent_by_id(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path
) -> None:
    # SHOAL_VOICE_MODELS on: the same code path as with a Fish key, against local_tts.
    with Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make:
        stack = make(api_tts, workers=1)
        settings = api_settings(stack, all_tenants(), voice_models=True)
        with ApiServer(settings) as api, api.client("key-t1") as http:
            made = upload(http, [A, B], ["Model one.", "Model two."])
            assert made.status_code == 201, made.text
            voice = made.json()
            model_id = voice["provider_model_id"]
            assert voice["state"] == "trained" and model_id
            model = api_tts.http.get(f"/model/{model_id}").json()
            assert model["visibility"] == "private" and model["title"] == "Narrator"

            job = http.post("/v1/jobs", json={"text": "Spoken by a model.", "voice": voice["id"]})
            assert job.status_code == 202, job.text
            assert job.json()["request"]["reference_id"] == model_id
            assert job.json()["request"]["references"] == 0
            assert poll(http, job.json()["id"])["status"] == JobStatus.SUCCEEDED.value
            session = [s for s in api_tts.stats()["sessions"] if "by a model" in s["text"]][-1]
            assert session["reference_id"] == model_id and session["references"] == []

            assert http.delete(f"/v1/voices/{voice['id']}").status_code == 204
            assert api_tts.http.get(f"/model/{model_id}").status_code == 404


def test_a_model_in_training_is_followed_and_a_failed_one_refuses_jobs(
    redis_url: str, api_s3: MotoS3, tmp_path: Path
) -> None:
    with (
        LocalTTS(engine="tone", extra_args=["--model-training-seconds", "3"]) as slow,
        LocalTTS(engine="tone", extra_args=["--model-training-fails"]) as failing,
        Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make,
    ):
        stack = make(slow)
        settings = api_settings(stack, all_tenants(), voice_models=True)
        with ApiServer(settings) as api, api.client("key-t1") as http:
            voice = upload(http, [A]).json()
            assert voice["state"] == "created"
            early = http.post("/v1/jobs", json={"text": "Hi.", "voice": voice["id"]}).json()
            assert early["request"]["references"] == 1  # not usable yet: the samples
            assert early["request"]["reference_id"] is None
            time.sleep(3.2)
            assert http.get(f"/v1/voices/{voice['id']}").json()["state"] == "trained"
            late = http.post("/v1/jobs", json={"text": "Hi.", "voice": voice["id"]}).json()
            assert late["request"]["reference_id"] == voice["provider_model_id"]

        stack = make(failing)
        settings = api_settings(stack, all_tenants(), voice_models=True)
        with ApiServer(settings) as api, api.client("key-t1") as http:
            voice = upload(http, [A]).json()
            shown = http.get(f"/v1/voices/{voice['id']}").json()
            assert shown["state"] == "failed" and shown["state_message"]
            before = queued_messages(stack)
            refused = http.post("/v1/jobs", json={"text": "Hi.", "voice": voice["id"]})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == {
                "code": "voice_failed",
                "message": refused.json()["error"]["message"],
                "field": "voice",
            }
            assert queued_messages(stack) == before


def test_a_provider_that_cannot_make_the_model_leaves_nothing(
    redis_url: str, api_tts: LocalTTS, api_s3: MotoS3, tmp_path: Path
) -> None:
    # The provider's address refuses connections (bound, not listening): 503, and the
    # samples stored before the call are deleted again.
    with (
        socket.socket() as dead,
        Stacks(redis_url, api_s3.endpoint_url, tmp_path) as make,
    ):
        dead.bind(("127.0.0.1", 0))
        stack = make(api_tts)
        provider = f"http://127.0.0.1:{dead.getsockname()[1]}"
        settings = api_settings(stack, all_tenants(), voice_models=True, fish_base_url=provider)
        with ApiServer(settings) as api, api.client("key-list") as http:
            refused = upload(http, [A, B])
            assert refused.status_code == 503, refused.text
            assert http.get("/v1/voices").json()["data"] == []
        storage = stack.storage
        reply = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix="list/voices/")
        assert reply.get("Contents", []) == []


def test_the_cli_keeps_voices_and_narrate_names_them(
    idle: ApiEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    def run(*argv: str) -> tuple[int, str, str]:
        return shoal(idle, capsys, monkeypatch, *argv)

    (tmp_path / "a.wav").write_bytes(A)
    (tmp_path / "b.wav").write_bytes(B)
    takes = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    code, out, err = run("voices", "add", "CLI voice", *takes, "--text", "a", "--text", "b")
    assert code == 0, err
    voice_id = out.strip()
    assert voice_id.startswith("voice_") and "2 samples, 7.5 s" in err
    code, out, err = run("voices", "add", "half", *takes, "--text", "a")
    assert code == 2 and "one per file" in err
    code, out, _ = run("voices", "list")
    assert code == 0 and voice_id in out and "CLI voice" in out
    code, out, _ = run("voices", "show", voice_id)
    assert [s["text"] for s in json.loads(out)["samples"]] == ["a", "b"]

    code, out, err = run("narrate", "Hello.", "--voice", voice_id, "--no-wait")
    assert code == 0, err
    job = idle.stack.store.get(json.loads(out)["id"])
    assert job is not None and job.request.voice == voice_id and len(job.request.references) == 2
    code, out, err = run("narrate", "Hello.", "--voice", "0123abcd", "--no-wait")
    assert code == 0, err  # not a shoal voice id: a provider voice model id, as before
    job = idle.stack.store.get(json.loads(out)["id"])
    assert job is not None and job.request.reference_id == "0123abcd" and job.request.voice is None

    assert run("voices", "rm", voice_id)[0] == 0
    assert run("voices", "show", voice_id)[0] == 1
    code, _, err = run("narrate", "Hi.", "--voice", voice_id, "--no-wait")
    assert code == 1 and "voice" in err


def test_a_preview_is_a_short_job_in_the_voice(
    live: ApiEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with live.client("t2") as http:
        voice = upload(http, [A], ["Preview voice."]).json()
        made = http.post(f"/v1/voices/{voice['id']}/preview")
        assert made.status_code == 202, made.text
        assert made.headers["location"] == f"/v1/jobs/{made.json()['id']}"
        assert made.json()["request"]["voice"] == voice["id"]
        done = poll(http, made.json()["id"])
        assert done["status"] == JobStatus.SUCCEEDED.value and done["output"]["duration_s"] > 1
        blank = http.post(f"/v1/voices/{voice['id']}/preview", json={"text": "  "})
        assert blank.status_code == 422 and blank.json()["error"]["field"] == "text"
    sample = {"sha256": hashlib.sha256(A).hexdigest(), "bytes": len(A), "text": "Preview voice."}
    sessions = [
        s for s in live.stack.tts.stats()["sessions"] if "sample of this voice" in s["text"]
    ]
    assert sessions and sessions[-1]["references"] == [sample]

    out = tmp_path / "preview.wav"
    code, _, err = shoal(
        live,
        capsys,
        monkeypatch,
        "voices",
        "preview",
        voice["id"],
        "--text",
        "Said by the command line.",
        "--format",
        "wav",
        "-o",
        str(out),
    )
    assert code == 0, err
    assert out.read_bytes()[:4] == b"RIFF" and "wrote" in err
