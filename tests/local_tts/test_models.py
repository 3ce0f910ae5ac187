"""Voice models over HTTP: ``/model`` and ``/wallet/self/...`` of a real local_tts.

The official SDK's voice client is exercised in test_sdk.py; these tests send
the raw requests, so they also cover what the SDK never sends (bad uploads,
other keys, paging bounds) and the state a model goes through.
"""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import ormsgpack
import pytest

from tests.local_tts.conftest import API_KEYS
from tests.servers import LocalTTS

KEY = "models-test-key"
TEXT = "A voice of its own, kept by id."
#: How many built-in models local_tts lists (one per engine voice).
BUILTINS = 36


def wav(freq: float, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A short WAV file of a tone: real audio, different for each frequency."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


REFS = [wav(220), wav(330)]


def client(server: LocalTTS, key: str | None = KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def create(
    http: httpx.Client,
    voices: list[bytes] = REFS,
    *,
    title: str = "Narrator",
    texts: list[str] | None = None,
    **data: Any,
) -> httpx.Response:
    """``POST /model`` as the SDK sends it (multipart, repeated fields for lists)."""
    form: dict[str, Any] = {"type": "tts", "train_mode": "fast", "title": title, **data}
    if texts is not None:
        form["texts"] = texts
    return http.post("/model", data=form, files=[("voices", v) for v in voices])


def created(http: httpx.Client, voices: list[bytes] = REFS, **kwargs: Any) -> dict[str, Any]:
    response = create(http, voices, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def tts(http: httpx.Client, **request: Any) -> httpx.Response:
    body = {"text": TEXT, "format": "pcm", **request}
    return http.post(
        "/v1/tts", content=ormsgpack.packb(body), headers={"content-type": "application/msgpack"}
    )


def assert_refused(response: httpx.Response, status: int, field: str) -> None:
    """Fish's error shape, exactly ``{"status", "message"}``, naming the field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert body["message"].startswith(field), body["message"]


# -- the model lifecycle ---------------------------------------------------------


def test_create_get_list_update_delete(tone: LocalTTS) -> None:
    with client(tone) as http:
        model = created(http, texts=["first", "second"], tags=["calm", "en"], visibility="private")
        assert model["state"] == "trained" and model["visibility"] == "private"
        assert model["title"] == "Narrator" and model["tags"] == ["calm", "en"]
        assert len(model["_id"]) == 32
        assert http.get(f"/model/{model['_id']}").json() == model

        mine = http.get("/model", params={"self": "true"}).json()
        assert mine["total"] == 1 and mine["items"][0]["_id"] == model["_id"]
        assert http.get("/model", params={"title": "narr"}).json()["total"] == 1
        assert http.get("/model", params={"tag": ["calm", "en"]}).json()["total"] == 1
        assert http.get("/model", params={"tag": ["calm", "loud"]}).json()["total"] == 0

        patched = http.patch(f"/model/{model['_id']}", data={"title": "Keeper", "tags": ["x"]})
        assert patched.status_code == 200, patched.text
        again = http.get(f"/model/{model['_id']}").json()
        assert (again["title"], again["tags"]) == ("Keeper", ["x"])
        assert again["description"] == model["description"]  # untouched fields stay

        assert http.delete(f"/model/{model['_id']}").status_code == 200
        assert_refused(http.get(f"/model/{model['_id']}"), 404, "Model")
        assert_refused(http.delete(f"/model/{model['_id']}"), 404, "Model")
        assert http.get("/model", params={"self": "true"}).json()["total"] == 0


def test_builtin_voices_are_listed_and_paged(tone: LocalTTS) -> None:
    with client(tone) as http:
        everything = http.get("/model", params={"page_size": 100}).json()
        assert everything["total"] == BUILTINS
        ids = [m["_id"] for m in everything["items"]]
        assert len(set(ids)) == BUILTINS
        pages = [
            http.get("/model", params={"page_size": 10, "page_number": n}).json()["items"]
            for n in (1, 2, 3, 4, 5)
        ]
        assert [len(p) for p in pages] == [10, 10, 10, 6, 0]
        assert [m["_id"] for page in pages for m in page] == ids  # a stable order
        female = http.get("/model", params={"tag": "female", "page_size": 100}).json()
        assert 0 < female["total"] < BUILTINS
        builtin = everything["items"][0]
        assert builtin["author"]["_id"] == "local_tts" and builtin["state"] == "trained"
        # Nobody owns them, so no key may change them.
        assert_refused(http.delete(f"/model/{builtin['_id']}"), 403, "Model")
        assert http.get("/model", params={"self": "true"}).json()["total"] == 0


def test_list_sorts_by_use_and_by_creation(tone: LocalTTS) -> None:
    with client(tone) as http:
        first = created(http, title="First")
        second = created(http, title="Second")
        newest = http.get("/model", params={"sort_by": "created_at", "page_size": 2}).json()
        assert [m["_id"] for m in newest["items"]] == [second["_id"], first["_id"]]
        assert tts(http, reference_id=first["_id"]).status_code == 200
        used = http.get("/model", params={"page_size": 1}).json()["items"][0]
        assert used["_id"] == first["_id"] and used["task_count"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_number": "zero"}, "page_number"),
        ({"self": "maybe"}, "self"),
        ({"sort_by": "likes"}, "sort_by"),
    ],
)
def test_bad_list_queries_are_refused(tone: LocalTTS, params: dict[str, str], field: str) -> None:
    with client(tone) as http:
        assert_refused(http.get("/model", params=params), 422, field)


# -- speaking with a model ---------------------------------------------------------


def test_a_model_speaks_with_the_voice_of_its_references(tone: LocalTTS) -> None:
    with client(tone) as http:
        one, two = created(http, title="One"), created(http, title="Two")
        other = created(http, [wav(440)], title="Other")
        assert one["_id"] != two["_id"]
        by_one = tts(http, reference_id=one["_id"]).content
        assert by_one and tts(http, reference_id=two["_id"]).content == by_one
        assert tts(http).content != by_one  # not the default voice
        assert tts(http, reference_id=other["_id"]).content != by_one
        # The same audio sent inline sounds the same as the model made from it.
        inline = [{"audio": a, "text": ""} for a in REFS]
        assert tts(http, references=inline).content == by_one
    sessions = tone.stats()["sessions"]
    assert sessions[0]["reference_id"] == one["_id"] and sessions[0]["references"] == []
    refs = sessions[-1]["references"]
    assert [r["bytes"] for r in refs] == [len(a) for a in REFS]
    assert len({r["sha256"] for r in refs}) == 2


def test_a_deleted_model_refuses_to_speak(tone: LocalTTS) -> None:
    with client(tone) as http:
        model = created(http)
        assert http.delete(f"/model/{model['_id']}").status_code == 200
        assert_refused(tts(http, reference_id=model["_id"]), 404, "reference_id")
        # An id this server never made still speaks, with the voice it derives.
        assert tts(http, reference_id="0123456789abcdef0123456789abcdef").status_code == 200
    ended = tone.stats()["sessions"][0]
    assert ended["end"] == "error" and model["_id"] in ended["error"]


def test_admin_reset_forgets_models(tone: LocalTTS) -> None:
    with client(tone) as http:
        model = created(http)
        tone.reset()
        assert_refused(http.get(f"/model/{model['_id']}"), 404, "Model")
        assert http.get("/model").json()["total"] == BUILTINS


def test_training_takes_the_configured_time(
    local_tts_factory: Callable[..., LocalTTS],
) -> None:
    server = local_tts_factory(
        engine="tone", rtf=0.01, extra_args=["--model-training-seconds", "1.5"]
    )
    with client(server) as http:
        model = created(http)
        assert model["state"] == "created"
        assert http.get(f"/model/{model['_id']}").json()["state"] == "training"
        assert_refused(tts(http, reference_id=model["_id"]), 409, "reference_id")
        deadline = time.monotonic() + 10
        while http.get(f"/model/{model['_id']}").json()["state"] != "trained":
            assert time.monotonic() < deadline, "the model never finished training"
            time.sleep(0.1)
        assert tts(http, reference_id=model["_id"]).status_code == 200


def test_training_can_be_made_to_fail(local_tts_factory: Callable[..., LocalTTS]) -> None:
    server = local_tts_factory(engine="tone", rtf=0.01, extra_args=["--model-training-fails"])
    with client(server) as http:
        model = created(http)
        assert http.get(f"/model/{model['_id']}").json()["state"] == "failed"
        response = tts(http, reference_id=model["_id"])
        assert_refused(response, 409, "reference_id")
        assert "failed" in response.json()["message"]


# -- bad uploads -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voices", "data", "field"),
    [
        ([b"this is not audio at all"], {}, "voices[0]"),
        ([REFS[0], b""], {}, "voices[1]"),
        ([], {}, "voices"),
        ([REFS[0]] * 21, {}, "voices"),
        (REFS, {"texts": ["only one"]}, "texts"),
        (REFS, {"title": "  "}, "title"),
        (REFS, {"visibility": "secret"}, "visibility"),
        (REFS, {"type": "svc"}, "type"),
        (REFS, {"train_mode": "full"}, "train_mode"),
        (REFS, {"enhance_audio_quality": "perhaps"}, "enhance_audio_quality"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_kept(
    tone: LocalTTS, voices: list[bytes], data: dict[str, Any], field: str
) -> None:
    with client(tone) as http:
        assert_refused(create(http, voices, **data), 422, field)
        assert http.get("/model", params={"self": "true"}).json()["total"] == 0


def test_a_voice_sent_as_text_is_refused(tone: LocalTTS) -> None:
    with client(tone) as http:
        response = http.post("/model", data={"type": "tts", "title": "T", "voices": "abc"})
        assert_refused(response, 422, "voices[0]")


def test_bad_updates_are_refused(tone: LocalTTS) -> None:
    with client(tone) as http:
        model = created(http)
        path = f"/model/{model['_id']}"
        assert_refused(http.patch(path, data={"visibility": "secret"}), 422, "visibility")
        assert_refused(http.patch(path, data={"title": ""}), 422, "title")
        assert_refused(http.patch("/model/" + "0" * 32, data={"title": "x"}), 404, "Model")
        assert http.get(path).json()["title"] == "Narrator"


# -- keys and the wallet -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/model"),
        ("POST", "/model"),
        ("GET", "/model/" + "0" * 32),
        ("PATCH", "/model/" + "0" * 32),
        ("DELETE", "/model/" + "0" * 32),
        ("GET", "/wallet/self/api-credit"),
        ("GET", "/wallet/self/package"),
    ],
)
def test_every_model_route_needs_the_key(auth: LocalTTS, method: str, path: str) -> None:
    for key in (None, "not-a-key"):
        with client(auth, key) as http:
            assert_refused(http.request(method, path), 401, "")
    with client(auth, API_KEYS[0]) as http:
        assert http.request(method, path).status_code != 401


def test_models_belong_to_their_key(auth: LocalTTS) -> None:
    with client(auth, API_KEYS[0]) as one, client(auth, API_KEYS[1]) as two:
        private = created(one, visibility="private")
        public = created(one, visibility="public", title="Shared")
        unlisted = created(one, visibility="unlist", title="By link")
        assert_refused(two.get(f"/model/{private['_id']}"), 404, "Model")
        assert two.get(f"/model/{unlisted['_id']}").status_code == 200
        listed = {m["_id"] for m in two.get("/model", params={"page_size": 100}).json()["items"]}
        assert public["_id"] in listed and not {private["_id"], unlisted["_id"]} & listed
        assert_refused(two.patch(f"/model/{public['_id']}", data={"title": "Mine"}), 403, "Model")
        assert_refused(two.delete(f"/model/{public['_id']}"), 403, "Model")
        assert two.get("/model", params={"self": "true"}).json()["total"] == 0
        assert one.get("/model", params={"self": "true"}).json()["total"] == 3


def test_wallet(tone: LocalTTS) -> None:
    with client(tone) as http, client(tone, "another-key") as other:
        credit = http.get("/wallet/self/api-credit").json()
        package = http.get("/wallet/self/package").json()
        assert float(credit["credit"]) > 0 and credit["user_id"] == package["user_id"]
        assert 0 < package["balance"] <= package["total"]
        assert other.get("/wallet/self/api-credit").json()["user_id"] != credit["user_id"]
