"""The web app in a real browser (headless Chromium) against a real stack.

Each test does what a person would: sign in, submit a narration and listen to
it, upload a book, look at its chapters and retry one, read why a job failed,
edit a lexicon, open the API docs.  The ``browser`` fixture checks, on every
page, that nothing was fetched from another host, no script failed and every
control has a name; screenshots of the main pages are written as artefacts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.api.test_voices import wav
from tests.stack import ROOT
from tests.web.conftest import KEY, Browser, WebEnv
from worker.jobs.model import JobStatus

BOOK = ROOT / "tests" / "fixtures" / "books" / "gutenberg-epub3.epub"
TEXT = (
    "The lighthouse keeper climbed the stairs at dusk. "
    "He lit the lamp and watched the boats come home.\n\n"
    "Morning came grey and quiet over the harbour."
)
#: How long a narration or a book may take on the tone engine.
DONE_MS = 45_000


def audio_duration(b: Browser, selector: str) -> float:
    """Wait until the ``<audio>`` at ``selector`` has loaded its metadata; its duration."""
    b.page.wait_for_function(
        f"() => {{ const a = document.querySelector({selector!r});"
        " return a && a.readyState >= 1 && a.duration > 0; }",
        timeout=DONE_MS,
    )
    return float(b.page.eval_on_selector(selector, "a => a.duration"))


def test_sign_in_says_when_the_key_is_wrong_and_signs_out(browser: Browser) -> None:
    page = browser.go("/app/jobs")
    expect(page).to_have_url(re.compile(r"/app/signin\?next="))  # signed out: sent to sign in
    browser.sign_in("not-a-key", accepted=False)
    expect(page.get_by_role("alert")).to_contain_text("That API key was not accepted")
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    browser.shot("signin-wrong-key")

    browser.sign_in(KEY)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("You are signed out")
    assert page.evaluate("sessionStorage.length") == 0


def test_a_narration_shows_its_cost_finishes_and_plays(browser: Browser) -> None:
    browser.sign_in()
    page = browser.go("/app/jobs/new")
    page.get_by_label("Text").fill(TEXT)
    page.get_by_label("Format").select_option("mp3")
    page.get_by_label("Speed").fill("1.2")
    expect(page.locator("#estimate")).to_contain_text("estimated cost $", timeout=5000)
    browser.shot("new-narration")
    page.get_by_role("button", name="Submit narration").click()

    expect(page).to_have_url(re.compile(r"/app/jobs/job_"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=DONE_MS)
    assert audio_duration(browser, "#player") > 2.0
    expect(page.get_by_role("link", name=re.compile(r"^Download mp3"))).to_be_visible()
    expect(page.locator("#details")).to_contain_text("1.2")  # the speed asked for
    assert page.locator("#captions").is_hidden()  # this job has no captions
    browser.shot("job")

    job_id = page.url.rsplit("/", 1)[-1]

    page = browser.go("/app/jobs")
    mine = page.locator(f'#jobs-table tbody tr[data-job="{job_id}"]')
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text(job_id)  # newest first
    expect(mine).to_contain_text("succeeded")
    page.get_by_label("failed").check()
    expect(mine).to_have_count(0)
    page.get_by_label("succeeded").check()
    expect(mine).to_have_count(1)
    page.get_by_label("all").check()
    expect(mine).to_have_count(1)
    browser.shot("jobs")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    browser.shot("jobs-phone")


def test_a_narration_with_captions_offers_them_for_download(browser: Browser) -> None:
    browser.sign_in()
    page = browser.go("/app/jobs/new")
    page.get_by_label("Text").fill(TEXT)
    page.get_by_label("Captions").select_option("sentence")
    page.get_by_role("button", name="Submit narration").click()
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=DONE_MS)
    links = page.locator("#captions a")
    expect(links).to_have_count(3)
    names = [links.nth(i).inner_text() for i in range(3)]
    assert [n.split(",")[0] for n in names] == [
        "Captions (VTT",
        "Captions (SRT",
        "Captions (JSON",
    ], names
    vtt = page.evaluate(
        "(url) => fetch(url).then((r) => r.text())", links.first.get_attribute("href")
    )
    assert vtt.startswith("WEBVTT")


def test_a_book_is_previewed_started_and_a_chapter_retried(browser: Browser) -> None:
    browser.sign_in()
    page = browser.go("/app/books/new")
    page.get_by_label("Book", exact=True).set_input_files(BOOK)
    page.get_by_role("button", name="Preview chapters").click()

    rows = page.locator("#chapters-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("CHAPTER I.")
    expect(page.locator("#book-summary")).to_contain_text("Pride and Prejudice")
    assert int(page.locator("#skipped-count").inner_text()) >= 2  # cover, licence, title page
    page.get_by_label("Narrate chapter 3").uncheck()
    expect(page.locator("#book-estimate")).to_contain_text("2 of 3 chapters")
    page.get_by_label("Audiobook").select_option("mp3")
    browser.shot("book-preview")
    page.get_by_role("button", name="Start narrating").click()

    expect(page).to_have_url(re.compile(r"/app/books/bat_"))
    chapters = page.locator("#chapters > li")
    expect(chapters).to_have_count(2)
    expect(page.locator("#book-status")).to_have_text("succeeded", timeout=DONE_MS)
    expect(page.get_by_role("link", name=re.compile("Download the audiobook"))).to_be_visible()
    expect(page.get_by_role("link", name="Manifest (JSON)")).to_be_visible()
    assert audio_duration(browser, "#chapters > li:first-child audio") > 1.0
    browser.shot("book")

    page.get_by_role("button", name="Retry chapter 1: CHAPTER I.").click()
    expect(page.get_by_role("alert")).to_contain_text("Chapter 1 will be narrated again")
    expect(chapters.first).to_contain_text("retried 1×", timeout=DONE_MS)
    expect(page.locator("#book-status")).to_have_text("succeeded", timeout=DONE_MS)
    expect(page.locator("#book-assembly")).to_contain_text("was built", timeout=DONE_MS)
    assert audio_duration(browser, "#chapters > li:first-child audio") > 1.0

    book_id = page.url.rsplit("/", 1)[-1]
    page = browser.go("/app/books")
    expect(page.locator(f'#books-table a[href="/app/books/{book_id}"]')).to_have_text(
        "Pride and Prejudice"
    )
    browser.shot("books")


def test_the_books_page_lists_books_newest_first_a_page_at_a_time(
    browser: Browser, web: WebEnv
) -> None:
    with web.api.client(KEY) as http:
        made = []
        for title in ("Older Tales", "Newer Tales"):
            files = {"file": ("tales.md", b"# One\n\nA line.", "text/markdown")}
            answer = http.post("/v1/books", files=files, data={"title": title})
            assert answer.status_code == 202, answer.text
            made.append(answer.json()["batch"]["id"])
        plain = http.post("/v1/batches", json={"items": [{"title": "Memo", "text": "Hello."}]})
        assert plain.status_code == 202, plain.text
        books = [b["id"] for b in http.get("/v1/batches?kind=book&limit=200").json()["data"]]
    assert books[:2] == made[::-1]

    browser.sign_in()
    page = browser.go("/app/books?per_page=1")
    rows = page.locator("#books-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("link")).to_have_text("Newer Tales")
    page.get_by_role("button", name="More books").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1).get_by_role("link")).to_have_text("Older Tales")
    more = page.get_by_role("button", name="More books")
    for shown in range(2, len(books)):
        more.click()
        expect(rows).to_have_count(shown + 1)
    expect(more).to_be_hidden()
    ids = [row.get_attribute("data-batch") for row in rows.all()]
    assert ids == books  # every book once, in order; the plain batch is not a book
    assert plain.json()["id"] not in ids


def test_a_failed_job_says_why_in_words(browser: Browser, web: WebEnv) -> None:
    web.tts.set_faults({"rules": [{"action": "reject", "status": 401}]})  # a permanent error
    try:
        with web.api.client(KEY) as http:
            job = http.post("/v1/jobs", json={"text": "Doomed from the start."}).json()
        assert web.stack.wait(job["id"], timeout=30).status is JobStatus.FAILED
    finally:
        web.tts.clear_faults()

    browser.sign_in()
    page = browser.go(f"/app/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("failed")
    error = page.locator("#job-error")
    expect(error).to_contain_text("refused shoal's credentials")
    expect(error).to_contain_text("provider_auth_rejected")
    expect(page.locator("#cancel")).to_be_hidden()
    assert "Traceback" not in page.content()
    browser.shot("job-failed")

    page = browser.go("/app/operations")
    failures = page.locator("#failures-table tbody tr")
    expect(failures.first).to_contain_text("provider_auth_rejected")
    expect(page.locator("#slots")).to_contain_text(re.compile(r"\d+ of \d+ in use"))
    expect(page.locator("#queues")).to_contain_text("Narrations waiting")
    browser.shot("operations")


def test_a_running_job_is_canceled_from_its_page(browser: Browser, web: WebEnv) -> None:
    # The provider goes quiet after its first audio, so the job stays running until canceled.
    web.tts.set_faults({"rules": [{"action": "stall", "after_audio": 1}]})
    try:
        browser.sign_in()
        with web.api.client(KEY) as http:
            job = http.post("/v1/jobs", json={"text": TEXT}).json()
        page = browser.go(f"/app/jobs/{job['id']}")
        expect(page.locator("#job-status")).to_have_text("running", timeout=DONE_MS)
        page.get_by_role("button", name="Cancel job").click()  # the confirmation is accepted
        expect(page.get_by_role("alert")).to_contain_text("The job was canceled")
        expect(page.locator("#job-status")).to_have_text("canceled")
        expect(page.locator("#cancel")).to_be_hidden()
    finally:
        web.tts.clear_faults()
    assert web.stack.wait(job["id"], timeout=10).status is JobStatus.CANCELED


def test_a_book_is_canceled_from_its_page(browser: Browser, web: WebEnv) -> None:
    web.tts.set_faults({"rules": [{"action": "stall", "after_audio": 1}]})  # chapters hang
    try:
        browser.sign_in()
        with web.api.client(KEY) as http:
            files = {"file": (BOOK.name, BOOK.read_bytes(), "application/epub+zip")}
            batch = http.post("/v1/books", files=files).json()["batch"]
        page = browser.go(f"/app/books/{batch['id']}")
        expect(page.locator("#chapters > li")).to_have_count(3)
        page.get_by_role("button", name="Cancel book").click()  # the confirmation is accepted
        expect(page.get_by_role("alert")).to_contain_text("The book was canceled")
        expect(page.locator("#book-status")).to_have_text("canceled")
        expect(page.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)
    finally:
        web.tts.clear_faults()


def test_a_lexicon_is_created_and_edited(browser: Browser) -> None:
    browser.sign_in()
    page = browser.go("/app/lexicons/new")
    page.get_by_label("Name").fill("Harbour words")
    page.get_by_label("Rule 1: word or phrase").fill("quay")
    page.get_by_label("Rule 1: say it as").fill("key")
    page.get_by_role("button", name="Save lexicon").click()
    expect(page.get_by_role("alert")).to_contain_text("Created")
    expect(page.locator("#lexicon-version")).to_contain_text("Version 1")

    page.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Rule 2: word or phrase").fill("Thames")
    page.get_by_label("Rule 2: say it as").fill("Tems")
    page.get_by_label("Rule 2: match case").check()
    page.get_by_role("button", name="Save lexicon").click()
    expect(page.locator("#lexicon-version")).to_contain_text("Version 2")
    browser.shot("lexicon")

    page = browser.go("/app/lexicons")
    expect(page.locator("#lexicons-table tbody tr")).to_contain_text("Harbour words")
    expect(page.locator("#lexicons-table tbody tr")).to_contain_text("2")


def test_a_voice_is_added_heard_and_previewed(browser: Browser, tmp_path: Path) -> None:
    sample = tmp_path / "harbour-master.wav"
    sample.write_bytes(wav(4.0))
    browser.sign_in()
    page = browser.go("/app/voices")
    page.get_by_label("Name").fill("Harbour master")
    page.get_by_label("Recordings").set_input_files(sample)
    page.get_by_role("button", name="Add voice").click()
    expect(page.get_by_role("alert")).to_contain_text("Added the voice “Harbour master”")
    card = page.locator("#voices > li", has_text="Harbour master")
    card.get_by_role("button", name="Play the recording").click()
    recording = card.get_by_label("Recording: harbour-master.wav")
    expect(recording).to_be_attached()
    assert audio_duration(browser, "#voices audio") == pytest.approx(4.0, abs=0.1)

    card.get_by_role("button", name="Hear a preview").click()
    expect(card.get_by_label("Preview of Harbour master")).to_be_attached(timeout=DONE_MS)
    assert audio_duration(browser, "#voices audio") > 1.0
    browser.shot("voices")

    page = browser.go("/app/jobs/new")  # the voice is offered for a narration
    expect(page.get_by_label("Voice").locator("option", has_text="Harbour master")).to_have_count(1)


def test_the_api_docs_render_from_local_files(browser: Browser) -> None:
    page = browser.go("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("shoal", timeout=15_000)
    expect(page.locator(".opblock-tag").first).to_be_visible()
    browser.shot("docs", full_page=False)
    page = browser.go("/redoc")
    expect(page.locator("h1").first).to_contain_text("shoal", timeout=15_000)
    browser.shot("redoc", full_page=False)
    # Stricter than the fixture's check: not even the storage, only the app's own address.
    parts = [urlsplit(u) for u in browser.requests]
    hosts = {p.netloc for p in parts if p.scheme in ("http", "https")}
    assert hosts == {urlsplit(browser.base).netloc}, hosts


def test_an_unknown_page_says_so(browser: Browser) -> None:
    started = time.monotonic()
    page = browser.page
    response = page.goto(browser.base + "/app/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert time.monotonic() - started < 10
