"""Pronunciation lexicons over HTTP: CRUD per tenant, PLS in and out, jobs that name them.

The ``idle`` stack has no worker (jobs stay queued, queues can be counted); the
``live`` test runs a job through a real worker and local_tts and reads what
local_tts received.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shoal_cli import main as cli
from tests.api.conftest import KEYS, ApiEnv
from tests.api.server import queued_messages
from tests.api.test_e2e import poll
from tests.worker.test_lexicons_pls import W3C_EXAMPLE
from worker.jobs.model import JobStatus

RULES = [
    {"grapheme": "Hermione", "alias": "Her-my-oh-nee"},
    {"grapheme": "SQL", "alias": "sequel", "case_sensitive": True},
    {"grapheme": "tomato", "phoneme": "təˈmɑːtəʊ"},
]


def create(http: httpx.Client, name: str = "names", rules: list | None = None) -> dict:
    created = http.post("/v1/lexicons", json={"name": name, "rules": rules or RULES})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/lexicons/{created.json()['id']}"
    return dict(created.json())


def test_create_show_list_replace_delete(idle: ApiEnv) -> None:
    with idle.client() as http:
        lex = create(http)
        assert lex["version"] == 1 and lex["rule_count"] == 3
        assert lex["not_applied"] == ["tomato"]  # a phoneme alone changes no text
        assert http.get(f"/v1/lexicons/{lex['id']}").json()["rules"] == [
            {"alias": None, "case_sensitive": False, "phoneme": None, "alphabet": None} | r
            for r in RULES
        ]
        listed = http.get("/v1/lexicons").json()["data"]
        assert lex["id"] in [x["id"] for x in listed]

        replaced = http.put(
            f"/v1/lexicons/{lex['id']}",
            json={"name": "renamed", "rules": [{"grapheme": "Tom", "alias": "Thom"}]},
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["version"] == 2 and replaced.json()["name"] == "renamed"

        assert http.delete(f"/v1/lexicons/{lex['id']}").status_code == 204
        assert http.get(f"/v1/lexicons/{lex['id']}").status_code == 404
        assert http.delete(f"/v1/lexicons/{lex['id']}").status_code == 404


def test_another_tenants_lexicon_is_not_found(idle: ApiEnv) -> None:
    with idle.client("t1") as mine, idle.client("t2") as theirs:
        lex = create(mine)
        path = f"/v1/lexicons/{lex['id']}"
        assert theirs.get(path).status_code == 404
        assert theirs.get(f"{path}/export").status_code == 404
        assert theirs.put(path, json={"name": "x", "rules": RULES}).status_code == 404
        assert theirs.delete(path).status_code == 404
        assert lex["id"] not in [x["id"] for x in theirs.get("/v1/lexicons").json()["data"]]
        assert mine.get(path).json()["version"] == 1  # untouched
        before = queued_messages(idle.stack)
        refused = theirs.post("/v1/jobs", json={"text": "Hermione.", "lexicons": [lex["id"]]})
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "lexicons.0"
        assert queued_messages(idle.stack) == before


def test_pls_import_and_export(idle: ApiEnv) -> None:
    with idle.client() as http:
        made = http.post("/v1/lexicons", json={"name": "w3c", "pls": W3C_EXAMPLE.decode()})
        assert made.status_code == 201, made.text
        lex = made.json()
        assert lex["language"] == "en-GB" and lex["rule_count"] == 4
        assert lex["not_applied"] == ["Sepulveda"]
        exported = http.get(f"/v1/lexicons/{lex['id']}/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/pls+xml")
        assert 'filename="w3c.pls"' in exported.headers["content-disposition"]
        again = http.post("/v1/lexicons", json={"name": "again", "pls": exported.text})
        assert again.status_code == 201, again.text
        assert again.json()["rules"] == lex["rules"]

        # The file itself as the body, as another service's export would be sent.
        pls = {"content-type": "application/pls+xml"}
        uploaded = http.post(
            "/v1/lexicons/pls", params={"name": "upload"}, content=W3C_EXAMPLE, headers=pls
        )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["rules"] == lex["rules"]
        assert uploaded.headers["location"] == f"/v1/lexicons/{uploaded.json()['id']}"
        before = len(http.get("/v1/lexicons").json()["data"])
        for content, headers, status, field in [
            (W3C_EXAMPLE, {"content-type": "application/json"}, 415, "body"),
            (b"<lexicon", pls, 422, "body"),
            (W3C_EXAMPLE.replace(b"<lexicon ", b"<lexicon><!-- -->", 1), pls, 422, "body"),
        ]:
            answer = http.post(
                "/v1/lexicons/pls", params={"name": "x"}, content=content, headers=headers
            )
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["field"] == field
        assert len(http.get("/v1/lexicons").json()["data"]) == before


def test_bad_lexicons_are_refused_naming_the_field(idle: ApiEnv) -> None:
    bad = [
        ({"name": "x", "pls": "<lexicon"}, "pls"),
        ({"name": "x", "pls": "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"}, "pls"),
        ({"name": "x"}, "body"),
        ({"name": "x", "rules": [], "pls": "<x/>"}, "body"),
        ({"name": "x", "rules": [{"grapheme": " ", "alias": "y"}]}, "rules.0"),
        ({"name": "x", "rules": [{"grapheme": "a"}]}, "rules.0"),
        (
            {
                "name": "x",
                "rules": [{"grapheme": "a", "alias": "b"}, {"grapheme": "A", "alias": "c"}],
            },
            "rules.1.grapheme",
        ),
    ]
    with idle.client() as http:
        before = len(http.get("/v1/lexicons").json()["data"])
        for body, field in bad:
            answer = http.post("/v1/lexicons", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["field"] == field, (body, answer.json())
        assert len(http.get("/v1/lexicons").json()["data"]) == before


def test_a_job_names_lexicons_and_records_what_was_applied(idle: ApiEnv) -> None:
    with idle.client() as http:
        names = create(http, "names")
        more = create(http, "more", [{"grapheme": "Hermione", "alias": "wrong"}])
        text = "Hermione wrote SQL, not sql."
        estimate = http.post(
            "/v1/estimate", json={"text": text, "lexicons": [names["id"], more["id"]]}
        ).json()
        job = http.post(
            "/v1/jobs", json={"text": text, "lexicons": [names["id"], more["id"]]}
        ).json()
        sent = "Her-my-oh-nee wrote sequel, not sql."
        assert job["request"]["characters"] == len(sent)
        assert job["billing"]["utf8_bytes"] == len(sent.encode())
        assert estimate["utf8_bytes"] == len(sent.encode())
        assert job["request"]["lexicons"] == [
            {"id": names["id"], "version": 1, "replacements": 2},
            {"id": more["id"], "version": 1, "replacements": 0},
        ]
        stored = idle.stack.redis.hget(idle.stack.keys.job(job["id"]), "request")
        assert stored is not None and sent.encode() in stored


def test_unknown_or_too_many_lexicons_enqueue_nothing(idle: ApiEnv) -> None:
    with idle.client("cancel") as http:
        real = create(http)["id"]
        before = queued_messages(idle.stack)
        cases = [
            ([real, "lex_000000000000000000ff"], "lexicons.1"),
            (["not-an-id"], "lexicons.0"),
            ([real] * 6, "lexicons"),
            ([real, real], "lexicons.1"),
        ]
        for ids, field in cases:
            answer = http.post("/v1/jobs", json={"text": "Hermione.", "lexicons": ids})
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field, answer.json()
            estimated = http.post("/v1/estimate", json={"text": "x", "lexicons": ids})
            assert estimated.status_code == 422
        assert queued_messages(idle.stack) == before
        assert http.get("/v1/jobs").json()["data"] == []


def test_a_lexicon_changes_what_local_tts_receives_and_the_audio(live: ApiEnv) -> None:
    text = "Zebedee met Quixotl."
    with live.client("voice") as http:
        lex = create(http, "long", [{"grapheme": "Quixotl", "alias": "Key-shot-ul the Elder"}])
        plain = poll(http, http.post("/v1/jobs", json={"text": text, "format": "wav"}).json()["id"])
        spelled = http.post(
            "/v1/jobs", json={"text": text, "format": "wav", "lexicons": [lex["id"]]}
        ).json()
        spelled = poll(http, spelled["id"])
    assert plain["status"] == spelled["status"] == "succeeded", (plain["error"], spelled["error"])
    received = [s["text"] for s in live.stack.tts.stats()["sessions"] if "Zebedee" in s["text"]]
    assert any("Quixotl" in t for t in received)
    assert any("Key-shot-ul the Elder" in t for t in received)
    assert not any("Quixotl" in t and "Key-shot-ul" in t for t in received)
    # The tone engine's audio is a function of the text: a longer text, longer audio.
    assert spelled["output"]["duration_s"] > plain["output"]["duration_s"]
    assert spelled["output"]["sha256"] != plain["output"]["sha256"]


def test_batches_take_lexicons_as_defaults_and_per_item(idle: ApiEnv) -> None:
    with idle.client("list") as http:
        lex = create(http, "names")
        items = [
            {"title": "One", "text": "Hermione ran."},
            {"title": "Two", "text": "Hermione sat.", "lexicons": []},
        ]
        unknown = "lex_000000000000000000ff"
        before = queued_messages(idle.stack)
        for defaults, own, field in [
            ([unknown], [], "defaults.lexicons.0"),
            ([lex["id"]], [lex["id"], unknown], "items.1.lexicons.1"),
        ]:
            bad = [items[0], items[1] | {"lexicons": own}]
            answer = http.post(
                "/v1/batches", json={"defaults": {"lexicons": defaults}, "items": bad}
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field
        assert queued_messages(idle.stack) == before

        made = http.post(
            "/v1/batches", json={"defaults": {"lexicons": [lex["id"]]}, "items": items}
        )
        assert made.status_code == 202, made.text
        batch = made.json()
        jobs = [idle.stack.store.get(item["job_id"]) for item in batch["items"]]
        assert [j.request.text for j in jobs if j] == ["Her-my-oh-nee ran.", "Hermione sat."]
        first = jobs[0]
        assert first is not None and first.request.source_text == "Hermione ran."
        assert [(a.id, a.version) for a in first.request.lexicons] == [(lex["id"], 1)]
        assert batch["billing"]["utf8_bytes"] == len(b"Her-my-oh-nee ran.Hermione sat.")

        # One call after the lexicon changed: only the item it respells is rendered again.
        path = f"/v1/batches/{batch['id']}/rerender"
        running = http.post(path)
        assert running.status_code == 409 and running.json()["error"]["code"] == "item_running"
        for job in jobs:
            assert job is not None and idle.stack.store.transition(job.id, JobStatus.FAILED)
        changed = [{"grapheme": "Hermione", "alias": "Hermy"}]
        assert (
            http.put(
                f"/v1/lexicons/{lex['id']}", json={"name": "names", "rules": changed}
            ).status_code
            == 200
        )
        rerendered = http.post(path)
        assert rerendered.status_code == 202, rerendered.text
        shown = rerendered.json()
    assert shown["items"][1]["job_id"] == batch["items"][1]["job_id"]  # untouched
    assert shown["items"][0]["replaced_jobs"] == [batch["items"][0]["job_id"]]
    new = idle.stack.store.get(shown["items"][0]["job_id"])
    assert new is not None and new.request.text == "Hermy ran."
    assert new.request.source_text == "Hermione ran."
    assert [(a.id, a.version) for a in new.request.lexicons] == [(lex["id"], 2)]


def test_a_book_takes_lexicons_in_its_options(idle: ApiEnv) -> None:
    book = b"# The Quest\n\nHermione set out at dawn.\n\n# The Return\n\nHermione came home.\n"
    with idle.client("idem") as http:
        lex = create(http, "names")

        def post(ids: list[str]) -> httpx.Response:
            options = json.dumps({"defaults": {"lexicons": ids}})
            files = {"file": ("quest.md", book, "text/markdown")}
            return http.post("/v1/books", files=files, data={"options": options})

        before = queued_messages(idle.stack)
        refused = post(["lex_000000000000000000ff"])
        assert refused.status_code == 422, refused.text
        # Named as submit_batch names it (as for callback_url): within the options.
        assert refused.json()["error"]["field"] == "defaults.lexicons.0"
        assert queued_messages(idle.stack) == before
        made = post([lex["id"]])
        assert made.status_code == 202, made.text
        batch = made.json()["batch"]
    texts = [idle.stack.store.get(item["job_id"]) for item in batch["items"]]
    assert all(j is not None and "Her-my-oh-nee" in j.request.text for j in texts)
    assert all(j is not None and "Hermione" not in j.request.text for j in texts)


def shoal(
    env: ApiEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    """Run ``shoal ARGV`` in-process against the API as tenant t2."""
    monkeypatch.setenv("SHOAL_API_URL", env.api.url)
    monkeypatch.setenv("SHOAL_API_KEY", KEYS["t2"])
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_keeps_lexicons_and_narrate_names_them(
    idle: ApiEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    def run(*argv: str) -> tuple[int, str, str]:
        return shoal(idle, capsys, monkeypatch, *argv)

    code, out, err = run("lexicons", "add", "names", "--rule", "Hermione=Her-my-oh-nee")
    assert code == 0, err
    lex_id = out.strip()
    assert lex_id.startswith("lex_") and "version 1, 1 rules" in err
    pls = tmp_path / "w3c.pls"
    pls.write_bytes(W3C_EXAMPLE)
    code, out, err = run("lexicons", "add", "w3c", "--pls", str(pls))
    assert code == 0 and "not applied" in err and "Sepulveda" in err
    code, out, _ = run("lexicons", "list")
    assert code == 0 and lex_id in out and "names" in out
    code, out, _ = run("lexicons", "show", lex_id)
    assert json.loads(out)["rules"][0]["alias"] == "Her-my-oh-nee"
    exported = tmp_path / "names.pls"
    assert run("lexicons", "export", lex_id, "-o", str(exported))[0] == 0
    assert b"<alias>Her-my-oh-nee</alias>" in exported.read_bytes()

    code, out, err = run("narrate", "Hermione laughed.", "--lexicon", lex_id, "--no-wait")
    assert code == 0, err
    job = idle.stack.store.get(json.loads(out)["id"])
    assert job is not None and job.request.text == "Her-my-oh-nee laughed."

    code, _, err = run("narrate", "Hi.", "--lexicon", "lex_000000000000000000ff", "--no-wait")
    assert code == 1 and "lexicons.0" in err
    bad = tmp_path / "bad.pls"
    bad.write_text("<lexicon", encoding="utf-8")
    code, _, err = run("lexicons", "add", "bad", "--pls", str(bad))
    assert code == 1 and "not well-formed" in err
    assert run("lexicons", "rm", lex_id)[0] == 0
    assert run("lexicons", "show", lex_id)[0] == 1
