"""Bare provider clients, run in a subprocess of their own so their CPU time is theirs.

Two clients stream the same texts to the same ``local_tts``:

* ``shoal``: the worker's own :func:`worker.fish.client.stream_tts`, one
  session per text, exactly as a segment is streamed, minus everything else
  a job does (governor, spool, checkpoint, assembly, upload);
* ``sdk``: the official ``fish-audio-sdk`` (``fishaudio.AsyncFishAudio``,
  ``tts.stream_websocket``) with ``base_url`` pointing at the server.

Both count the audio bytes and drop them.  :func:`run` starts
``python -m bench.clients`` with a JSON spec on stdin and returns the JSON it
prints: wall time, CPU time (``time.process_time``, measured after imports)
and what came back.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The spec's keys: kind ("shoal"|"sdk"), url (http://host:port), texts (list),
#: concurrency (sessions at once), format ("pcm"), sample_rate (int).
Spec = dict[str, Any]


def run(spec: Spec, timeout: float = 600.0) -> dict[str, Any]:
    """Run one client in a fresh interpreter; its measurements as a dict."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.clients"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.clients {spec['kind']} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _shoal_session(spec: Spec) -> Callable[[str], Awaitable[int]]:
    from worker.fish import AudioFormat, TTSRequest
    from worker.fish.client import ProviderConfig, stream_tts

    base = spec["url"].rstrip("/")
    config = ProviderConfig(
        ws_url=base.replace("http://", "ws://", 1) + "/v1/tts/live",
        api_key="bench",
        model="s2.1-pro",
        first_audio_timeout=60,
        silence_timeout=60,
    )
    request = TTSRequest(format=AudioFormat(spec["format"]), sample_rate=spec["sample_rate"])

    async def session(text: str) -> int:
        received = 0

        def count(data: bytes) -> None:
            nonlocal received
            received += len(data)

        await stream_tts(config, request, text, count)
        return received

    return session


def _sdk_session(spec: Spec) -> tuple[Callable[[str], Awaitable[int]], Any]:
    from fishaudio import AsyncFishAudio, TTSConfig

    client = AsyncFishAudio(api_key="bench", base_url=spec["url"])
    config = TTSConfig(format=spec["format"], sample_rate=spec["sample_rate"])

    async def one(text: str) -> AsyncIterator[str]:
        yield text

    async def session(text: str) -> int:
        received = 0
        async for chunk in client.tts.stream_websocket(one(text), config=config):
            received += len(chunk)
        return received

    return session, client


async def _main(spec: Spec) -> dict[str, Any]:
    closer = None
    if spec["kind"] == "shoal":
        session = _shoal_session(spec)
    elif spec["kind"] == "sdk":
        session, closer = _sdk_session(spec)
    else:
        raise SystemExit(f"unknown client kind {spec['kind']!r}")
    limit = asyncio.Semaphore(int(spec["concurrency"]))

    async def bounded(text: str) -> int:
        async with limit:
            return await session(text)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    sizes = await asyncio.gather(*(bounded(t) for t in spec["texts"]))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if closer is not None:
        await closer.close()
    return {
        "kind": spec["kind"],
        "sessions": len(sizes),
        "audio_bytes": sum(sizes),
        "wall_s": wall,
        "cpu_s": cpu,
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_main(spec))))


if __name__ == "__main__":
    main()
