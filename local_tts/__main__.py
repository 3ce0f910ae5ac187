"""``python -m local_tts``: run the offline Fish-compatible TTS server.

Prints one line, ``local_tts listening on http://HOST:PORT``, once it accepts
connections (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from local_tts import piper
from local_tts.app import ServerConfig, create_app
from local_tts.engines import ENGINE_NAMES
from local_tts.faults import FaultPlan, FaultPlanError
from local_tts.transport import FaultableWebSocketProtocol


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m local_tts",
        description="Offline TTS server speaking Fish Audio's live protocol (/v1/tts/live).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default="espeak",
        help="piper needs the optional piper extra",
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=[],
        dest="api_keys",
        help="accepted Bearer key (repeatable); with none, any key is accepted",
    )
    p.add_argument("--max-concurrency", type=int, default=0, help="0 means unlimited")
    p.add_argument(
        "--rtf", type=float, default=0.05, help="tone engine: wall time per audio second"
    )
    p.add_argument("--ttfb-ms", type=float, default=50.0, help="tone engine: time to first audio")
    p.add_argument("--piece-ms", type=float, default=500.0, help="audio per audio event")
    p.add_argument("--processes", type=int, default=None, help="espeak and piper worker processes")
    p.add_argument("--max-message-bytes", type=int, default=8 << 20)
    p.add_argument("--idle-timeout", type=float, default=60.0)
    p.add_argument("--faults", default=None, help="fault plan as JSON, or @file")
    p.add_argument(
        "--model-training-seconds",
        type=float,
        default=0.0,
        help="how long a model made by POST /model trains before it can speak",
    )
    p.add_argument(
        "--model-training-fails",
        action="store_true",
        help="models made by POST /model end in state 'failed' instead of 'trained'",
    )
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    if args.faults and args.faults.startswith("@"):
        args.faults = Path(args.faults[1:]).read_text()
    try:
        FaultPlan.parse(args.faults)
    except FaultPlanError as exc:
        p.error(str(exc))
    absent = piper.missing() if args.engine == "piper" else []
    if absent:
        p.error(f"--engine piper needs {', '.join(absent)}: {piper.INSTALL_HINT}")
    for name in ("max_concurrency", "max_message_bytes", "model_training_seconds"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    return args


async def serve(args: argparse.Namespace) -> None:
    config = ServerConfig(
        engine=args.engine,
        api_keys=frozenset(args.api_keys),
        max_concurrency=args.max_concurrency,
        rtf=args.rtf,
        ttfb_ms=args.ttfb_ms,
        piece_ms=args.piece_ms,
        processes=args.processes,
        max_message_bytes=args.max_message_bytes,
        idle_timeout=args.idle_timeout,
        faults=args.faults,
        model_training_seconds=args.model_training_seconds,
        model_training_fails=args.model_training_fails,
    )
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    uv_config = uvicorn.Config(
        create_app(config),
        ws=FaultableWebSocketProtocol,
        # Audio frames are incompressible; deflate would only cost throughput.
        ws_per_message_deflate=False,
        ws_max_size=max(args.max_message_bytes * 2, 1 << 20),
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(uv_config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit("local_tts failed to start")
        await asyncio.sleep(0.02)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"local_tts listening on http://{shown}:{port}", flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    # uvicorn installs its own SIGINT/SIGTERM handlers for a graceful stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
