"""Narration controls of books over HTTP: ``* * *`` and ``<hr/>`` become a pause of
``options.scene_break_ms`` in the chapter's job, never text read aloud, never billed;
a published book's own "<" never starts a tag, a manuscript's tags are markup; a
chapter may have a voice of its own.  The ``idle`` stack has no worker: the jobs'
records are read as queued.
"""

from __future__ import annotations

import pytest

from shoal_cli.books import book_options
from shoal_cli.client import CliError
from shoal_cli.main import build_parser
from tests.api.conftest import ApiEnv
from tests.api.test_books import upload
from tests.api.test_lexicons import create
from tests.api.test_voices import A
from tests.api.test_voices import upload as upload_voice
from tests.worker.test_books_fixtures import SAMPLE_MARKDOWN, Doc, EpubSpec, build_epub, xhtml
from worker.jobs.markup import spoken_text


def _chapter_text(env: ApiEnv, answer: dict, title: str) -> tuple[str, int]:
    items = answer["batch"]["items"]
    item = next(i for i in items if i["title"] == title)
    job = env.stack.store.get(item["job_id"])
    assert job is not None
    return job.request.text, job.billing.utf8_bytes


def test_a_markdown_scene_break_is_a_pause_of_the_books_setting(idle: ApiEnv) -> None:
    answer = upload(idle, SAMPLE_MARKDOWN.encode(), "sea.md", options={"scene_break_ms": 1500})
    assert answer.status_code == 202, answer.text
    text, billed = _chapter_text(idle, answer.json(), "The Storm")
    assert text == (
        "The Storm.\n\nWaves rose high higher than the mast.\n\n"
        '<break time="1500ms"/>\n\nBy morning the sea was calm.'
    )
    assert billed == len(spoken_text(text).encode())

    default = upload(idle, SAMPLE_MARKDOWN.encode(), "sea.md")
    text, _ = _chapter_text(idle, default.json(), "The Storm")
    assert '\n\n<break time="2000ms"/>\n\n' in text

    bad = upload(idle, SAMPLE_MARKDOWN.encode(), "sea.md", options={"scene_break_ms": 60_000})
    assert bad.status_code == 422 and "scene_break_ms" in bad.json()["error"]["field"]


def test_an_epub_rule_is_a_scene_break_and_its_own_tags_are_plain_text(idle: ApiEnv) -> None:
    body = (
        '<h1>One</h1><p>It began at dawn.</p><hr/><p>Later, type &lt;break time="9s"/&gt;'
        " and &lt;/voice&gt; to see.</p><hr/>"
    )
    spec = EpubSpec(docs=[Doc("c1", "c1.xhtml", xhtml(body))], nav=[("c1.xhtml", "One")])
    answer = upload(idle, build_epub(spec), "rules.epub", options={"scene_break_ms": 800})
    assert answer.status_code == 202, answer.text
    text, _ = _chapter_text(idle, answer.json(), "One")
    assert text == (
        'One.\n\nIt began at dawn.\n\n<break time="800ms"/>\n\n'
        'Later, type \u2039break time="9s"/> and \u2039/voice> to see.'
    )


def test_the_cli_sends_the_silences_as_book_options() -> None:
    args = build_parser().parse_args(
        ["book", "b.epub", "--scene-break-ms", "1200", "--paragraph-silence-ms", "400"]
    )
    options = book_options(args)
    assert options["scene_break_ms"] == 1200
    assert options["defaults"]["paragraph_silence_ms"] == 400
    assert "scene_break_ms" not in book_options(build_parser().parse_args(["book", "b.epub"]))
    args = build_parser().parse_args(["book", "b.md", "--chapter-voice", "3=voice_a"])
    assert book_options(args)["chapter_voices"] == {"3": "voice_a"}
    bad = build_parser().parse_args(["book", "b.md", "--chapter-voice", "three"])
    with pytest.raises(CliError, match="N=VOICE"):
        book_options(bad)


MANUSCRIPT = """# The Visit

Hermione knocked twice. <break time="1.5s"/> Nobody came.

# The Door

It opened at last.
"""


def test_a_manuscripts_own_breaks_are_pauses_and_its_lexicons_apply(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        lex = create(http, "names", [{"grapheme": "Hermione", "alias": "Her-my-oh-nee"}])
    options = {"defaults": {"lexicons": [lex["id"]]}, "speak_titles": False}
    answer = upload(idle, MANUSCRIPT.encode(), "visit.md", options=options)
    assert answer.status_code == 202, answer.text
    text, billed = _chapter_text(idle, answer.json(), "The Visit")
    assert text == 'Her-my-oh-nee knocked twice. <break time="1.5s"/> Nobody came.'
    assert billed == len(b"Her-my-oh-nee knocked twice.  Nobody came.")

    typo = MANUSCRIPT.replace('time="1.5s"', 'time="soon"')
    bad = upload(idle, typo.encode(), "visit.md")
    assert bad.status_code == 422, bad.text
    error = bad.json()["error"]
    assert error["field"] == "chapters.0.text", error
    assert "at character" in error["message"] and "soon" in error["message"], error


def test_a_chapter_can_have_a_voice_of_its_own(idle: ApiEnv) -> None:
    with idle.client("t1") as http:
        ann = upload_voice(http, [A], ["Ann."], title="Ann").json()
    options = {"chapter_voices": {"2": ann["id"]}, "speak_titles": False}
    answer = upload(idle, MANUSCRIPT.encode(), "visit.md", options=options)
    assert answer.status_code == 202, answer.text
    items = answer.json()["batch"]["items"]
    jobs = [idle.stack.store.get(item["job_id"]) for item in items]
    assert [j.request.voice if j else "?" for j in jobs] == [None, ann["id"]]

    for voices, field, says in [
        ({"3": ann["id"]}, "options.chapter_voices", "no chapter 3"),
        ({"1": "voice_nope"}, "chapters.0.voice", "no voice 'voice_nope'"),
    ]:
        bad = upload(idle, MANUSCRIPT.encode(), "visit.md", options={"chapter_voices": voices})
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["field"] == field and says in bad.json()["error"]["message"]
