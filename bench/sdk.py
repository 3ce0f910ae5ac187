"""Figure 6: shoal's streaming client against the official ``fish-audio-sdk``.

The same texts (``sdk_sessions`` of them, ~1 minute of audio each) go to the
same ``local_tts`` with no pacing (``rtf`` 0, so the clients' own costs show),
first one session after another, then all at once.  Each client runs in a
fresh subprocess (:mod:`bench.clients`) that measures its own wall and CPU
time; the two alternate ``sdk_reps`` times and the medians are compared.
"""

from __future__ import annotations

from typing import Any

from bench import clients
from bench.infra import Services, log
from bench.report import Row, median
from bench.sizes import Sizes
from bench.texts import paragraphs

RATE = 44100


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(0.0, 0.0)
    texts = [paragraphs(sizes.sdk_chars, seed=200 + i) for i in range(sizes.sdk_sessions)]
    rows: list[Row] = []
    for label, concurrency in (("sequential", 1), ("concurrent", sizes.sdk_sessions)):
        results: dict[str, list[dict[str, Any]]] = {"shoal": [], "sdk": []}
        for rep in range(sizes.sdk_reps):
            for kind in ("shoal", "sdk"):
                log(f"6 client vs SDK: {kind}, {len(texts)} sessions {label} ({rep + 1})")
                spec = {
                    "kind": kind,
                    "url": tts.url,
                    "texts": texts,
                    "concurrency": concurrency,
                    "format": "pcm",
                    "sample_rate": RATE,
                }
                results[kind].append(clients.run(spec))
        ours, theirs = results["shoal"], results["sdk"]
        if ours[0]["audio_bytes"] != theirs[0]["audio_bytes"]:
            raise RuntimeError(f"the clients received different audio: {ours[0]} vs {theirs[0]}")
        audio_s = ours[0]["audio_bytes"] / 2 / RATE
        common = {"sessions": len(texts), "audio_s": audio_s, "reps": sizes.sdk_reps}
        tag = "6a" if concurrency == 1 else "6c"
        cpu_tag = "6b" if concurrency == 1 else "6d"
        rows += [
            Row(
                figure=tag,
                name=f"wall, {len(texts)} sessions {label}: shoal / SDK",
                value=median([r["wall_s"] for r in ours]),
                reference=median([r["wall_s"] for r in theirs]),
                unit="s",
                meaning="<1: our client finishes sooner on the same server",
                details={**common, "concurrency": concurrency},
            ),
            Row(
                figure=cpu_tag,
                name=f"client CPU, {len(texts)} sessions {label}: shoal / SDK",
                value=median([r["cpu_s"] for r in ours]),
                reference=median([r["cpu_s"] for r in theirs]),
                unit="s",
                meaning="<1: our client spends less CPU for the same audio",
                details={
                    "shoal_cpu_ms_per_audio_min": 60_000 * ours[0]["cpu_s"] / audio_s,
                    "sdk_cpu_ms_per_audio_min": 60_000 * theirs[0]["cpu_s"] / audio_s,
                },
            ),
        ]
    return rows
