"""Voice passages over HTTP: ``<voice name="…">`` switches the voice for a passage.

A bad tag or an unknown voice is refused naming the field and the tag's
position, with nothing queued; a passage reaches local_tts (a real server, the
tone engine) with its own voice's samples, and the passages of a job come out
at one speech level.  The ``idle`` stack has no worker; ``live`` has one.
"""

from __future__ import annotations

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages
from tests.api.test_breaks import _longest_quiet_run, _samples
from tests.api.test_e2e import poll
from tests.api.test_voices import A, B, upload
from worker.audio.level import speech_level_db


def test_bad_voice_tags_and_unknown_voices_are_refused_with_their_position(
    idle: ApiEnv,
) -> None:
    with idle.client("cancel") as http:
        before = queued_messages(idle.stack)
        for text, position, says in [
            ('Hi. <voice name="voice_nope">Who?</voice>', 4, "names no voice 'voice_nope'"),
            ('Hi. <voice name="x">never closed', 4, "never closed"),
            ("Hi. </voice>", 4, "closes no voice"),
        ]:
            answer = http.post("/v1/jobs", json={"text": text})
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["field"] == "text", error
            assert f"at character {position}" in error["message"], error
            assert says in error["message"], error
            items = [{"title": "One", "text": "Fine."}, {"title": "Two", "text": text}]
            batch = http.post("/v1/batches", json={"items": items})
            assert batch.status_code == 422, batch.text
            assert batch.json()["error"]["field"] == "items.1.text", batch.text
            assert f"at character {position}" in batch.json()["error"]["message"]
        assert queued_messages(idle.stack) == before
        assert http.get("/v1/jobs").json()["data"] == []


def test_a_job_keeps_each_passage_voice_with_its_samples(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        ann = upload(http, [A], ["Ann."], title="Ann").json()
        bob = upload(http, [B], ["Bob."], title="Bob").json()
        text = (
            f'Narrator. <voice name="{ann["id"]}">Ann.</voice> '
            f'<voice name="{bob["id"]}">Bob.</voice> <voice name="{ann["id"]}">Ann.</voice>'
        )
        made = http.post("/v1/jobs", json={"text": text})
        assert made.status_code == 202, made.text
        job = idle.stack.store.get(made.json()["id"])
        assert job is not None
        voices = job.request.passage_voices
        assert list(voices) == [ann["id"], bob["id"]]
        assert [c.audio for c in voices[ann["id"]].references] == [A]
        assert [c.audio for c in voices[bob["id"]].references] == [B]
        assert job.billing.utf8_bytes == len(b"Narrator. Ann. Bob. Ann.")

        items = [{"title": "One", "text": text}]
        batch = http.post("/v1/batches", json={"items": items})
        assert batch.status_code == 202, batch.text
        item_job = idle.stack.store.get(batch.json()["items"][0]["job_id"])
        assert item_job is not None and list(item_job.request.passage_voices) == list(voices)


def test_a_passage_reaches_local_tts_in_its_voice_at_the_same_level(live: ApiEnv) -> None:
    with live.client("voice") as http:
        ann = upload(http, [A], ["Ann's sample."], title="Ann").json()
        text = (
            "The narrator begins the tale with calm words. "
            '<break time="1s"/>'
            f'<voice name="{ann["id"]}">Ann answers him in a voice of her own.</voice>'
        )
        made = http.post("/v1/jobs", json={"text": text, "format": "wav"})
        assert made.status_code == 202, made.text
        done = poll(http, made.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        storage = live.stack.storage
        body = storage.client.get_object(Bucket=storage.bucket, Key=done["output"]["key"])
        samples, rate = _samples(body["Body"].read())
    sessions = live.stack.tts.stats()["sessions"]
    narrator = [s for s in sessions if "narrator begins" in s["text"]]
    passage = [s for s in sessions if "Ann answers" in s["text"]]
    assert narrator and passage
    assert not narrator[-1]["references"]
    assert [r["text"] for r in passage[-1]["references"]] == ["Ann's sample."]
    assert not any("<voice" in s["text"] or "</voice>" in s["text"] for s in sessions)

    start, length = _longest_quiet_run(samples)
    before = speech_level_db(samples[:start], rate)
    after = speech_level_db(samples[start + length :], rate)
    assert before is not None and after is not None
    assert abs(before - -20.0) < 0.5 and abs(after - -20.0) < 0.5, (before, after)


def test_the_estimate_counts_neither_tags_nor_their_text(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        ann = upload(http, [A], ["Ann."], title="Ann").json()
        text = f'One two. <break time="2s"/><voice name="{ann["id"]}">Three.</voice>'
        answer = http.post("/v1/estimate", json={"text": text})
        assert answer.status_code == 200, answer.text
        plain = http.post("/v1/estimate", json={"text": "One two. Three."}).json()
        got = answer.json()
        assert got["characters"] == plain["characters"] == len("One two. Three.")
        assert got["utf8_bytes"] == plain["utf8_bytes"]
        assert got["estimated_audio_seconds"] == round(plain["estimated_audio_seconds"] + 2, 1)
        bad = http.post("/v1/estimate", json={"text": 'a <break time="x"/>'})
        assert bad.status_code == 422 and "at character 2" in bad.json()["error"]["message"]
