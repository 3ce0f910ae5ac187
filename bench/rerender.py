"""Figures 9a-c: what a re-render costs once the segment cache holds the book.

A 20-chapter book is rendered through the API (``POST /v1/batches``, one job per
chapter, the combined book built at the end), with the segment cache on and a
lexicon whose one rule touches no chapter yet.  Then:

9a/9b. One paragraph of chapter 3 is edited and the chapter retried with its new
       text (``POST /v1/batches/{id}/items/2/retry``): the provider sessions this
       opens (local_tts's own count), and the wall time until the book is built
       again, against the first render's.
9c.    One rule is added to the lexicon, touching a word of chapter 5 only, and the
       book re-rendered (``POST /v1/batches/{id}/rerender``): the UTF-8 bytes sent
       to the provider (the texts local_tts received) against chapter 5's bytes,
       so the ratio is at most 1 when only that chapter's share is paid again.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from bench.infra import Services, log
from bench.report import Row
from bench.sizes import Sizes
from bench.texts import sentence
from tests.api.server import ApiServer, api_settings, tenant
from tests.stack import Stack

CHAPTERS = 20
EDITED = 2  # chapter 3: one paragraph of it is edited
RESPELLED = 4  # chapter 5: the only one holding the word the new lexicon rule respells
WORD = "Quillimore"  # the word of chapter 5
KEY = "bench-key"


def chapters(paragraphs: int, chars: int, seed: int = 11) -> list[str]:
    """``CHAPTERS`` texts of ``paragraphs`` paragraphs of about ``chars`` characters."""
    rng = random.Random(seed)
    out = []
    for n in range(CHAPTERS):
        paras = []
        for _ in range(paragraphs):
            para = ""
            while len(para) < 0.8 * chars:
                para = f"{para} {sentence(rng)}".strip()
            paras.append(para)
        if n == RESPELLED:
            paras[-1] = f"{paras[-1]} And so {WORD} came home."
        out.append("\n\n".join(paras))
    return out


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(sizes.rtf, sizes.ttfb_ms)
    stack = services.stack(
        tts,
        SHOAL_SEGMENT_CACHE_DAYS="30",
        SHOAL_PROVIDER_SLOTS=str(sizes.slot_limit),
        SHOAL_JOB_PARALLEL_SEGMENTS=str(sizes.book_parallel),
        SHOAL_SEGMENT_MAX_CHARS=str(sizes.book_segment_chars),
        SHOAL_WORKER_CONCURRENCY="8",
    )
    try:
        log("starting a worker and the API (figures 9a-c: re-renders from the segment cache)")
        stack.start_worker(concurrency=8)
        settings = api_settings(stack, [tenant("bench", KEY, max_jobs_in_flight=1000)])
        with ApiServer(settings) as api, api.client(KEY) as http:
            return rerenders(stack, http, sizes)
    finally:
        services.close_stack(stack)


def rerenders(stack: Stack, http: httpx.Client, sizes: Sizes) -> list[Row]:
    paragraphs = 3 if sizes.book_segment_chars >= 400 else 2
    texts = chapters(paragraphs, sizes.book_segment_chars - 10)
    made = http.post("/v1/lexicons", json={"name": "names", "rules": [_rule("Nobody")]})
    lexicon = made.json()["id"]
    items = [{"title": f"Chapter {n + 1}", "text": t} for n, t in enumerate(texts)]
    body = {"items": items, "defaults": {"lexicons": [lexicon]}}
    stack.tts.reset()
    log(f"9 first render: {CHAPTERS} chapters of {paragraphs} paragraphs, rtf {sizes.rtf:g}")
    started = time.monotonic()
    created = http.post("/v1/batches", json=body)
    created.raise_for_status()
    batch = created.json()["id"]
    _built(http, batch)
    first_wall = time.monotonic() - started
    first = _sent(stack)

    log("9a-b one paragraph of chapter 3 edited, the chapter retried")
    paras = texts[EDITED].split("\n\n")
    paras[1] = paras[1].replace(" ", " truly ", 1)
    started = time.monotonic()
    retried = http.post(
        f"/v1/batches/{batch}/items/{EDITED}/retry", json={"text": "\n\n".join(paras)}
    )
    retried.raise_for_status()
    _built(http, batch)
    edit_wall = time.monotonic() - started
    edit = _sent(stack)[len(first) :]
    # The provider's own time for the edit: no re-render can be faster than its sessions.
    edit_sessions = sorted(stack.tts.stats()["sessions"], key=lambda s: s["n"])[len(first) :]
    session_s = max(
        ((s["closed_at"] or s["opened_at"]) - s["opened_at"] for s in edit_sessions), default=0.0
    )
    job = stack.store.get(retried.json()["items"][EDITED]["job_id"])
    job_s = job.finished_at - job.created_at if job and job.finished_at else float("nan")

    log("9c one lexicon rule added that respells a word of chapter 5; the book re-rendered")
    rules = [_rule("Nobody"), _rule(WORD, "Quill-i-more")]
    http.put(f"/v1/lexicons/{lexicon}", json={"name": "names", "rules": rules}).raise_for_status()
    http.post(f"/v1/batches/{batch}/rerender").raise_for_status()
    _built(http, batch)
    respelled = _sent(stack)[len(first) + len(edit) :]
    book_bytes = sum(len(t.encode()) for t in texts)
    chapter_bytes = len(texts[RESPELLED].encode())
    sent_bytes = sum(len(t.encode()) for t in respelled)
    common: dict[str, Any] = {"chapters": CHAPTERS, "first_sessions": len(first)}
    return [
        Row(
            figure="9a",
            name="re-render after a paragraph edit: provider sessions",
            value=len(edit),
            reference=2,
            unit="",
            meaning="≤1: at most 2 sessions (the first render opened first_sessions)",
            details={**common, "texts_sent": [t[:60] for t in edit]},
        ),
        Row(
            figure="9b",
            name="re-render wall / first render wall",
            value=edit_wall,
            reference=first_wall,
            unit="s",
            meaning="target ≤0.05: the cache serves every untouched segment",
            details={
                "first_render_s": first_wall,
                "rerender_s": edit_wall,
                # The rest is the book joined again from the chapters' sections.
                "chapter_job_s": job_s,
                "chapter_job_share": job_s / first_wall,
                # The floor: the edited segment's provider session against the first render.
                "edit_session_s": session_s,
                "edit_session_share": session_s / first_wall,
            },
        ),
        Row(
            figure="9c",
            name="lexicon re-render: bytes sent / the touched chapter's bytes",
            value=sent_bytes,
            reference=chapter_bytes,
            unit="B",
            meaning="≤1: no more than that chapter's share of the book is paid again",
            details={
                "book_bytes": book_bytes,
                "sent_share_of_book": sent_bytes / book_bytes,
                "chapter_share_of_book": chapter_bytes / book_bytes,
                "sessions": len(respelled),
            },
        ),
    ]


def _rule(grapheme: str, alias: str | None = None) -> dict[str, str]:
    return {"grapheme": grapheme, "alias": alias or grapheme}


def _sent(stack: Stack) -> list[str]:
    """The texts of every provider session since the reset, in order."""
    sessions = sorted(stack.tts.wait_idle(timeout=60)["sessions"], key=lambda s: s["n"])
    return [s["text"] for s in sessions]


def _built(http: httpx.Client, batch: str, timeout: float = 1800) -> dict[str, Any]:
    """The batch once its current generation is built; raises if it fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown: dict[str, Any] = http.get(f"/v1/batches/{batch}").json()
        assembly = shown["outputs"]["assembly"]
        if (
            shown["status"] == "succeeded"
            and assembly["built_generation"] == assembly["generation"]
        ):
            return shown
        if shown["status"] in ("failed", "partially_failed", "canceled"):
            raise RuntimeError(f"batch {batch} {shown['status']}: {shown.get('error')}")
        time.sleep(0.1)
    raise TimeoutError(f"batch {batch} not built after {timeout:.0f}s")
