"""``python -m shoal_run [run|demo]``: what ``make run`` and ``make demo`` call.

``run`` starts the stack, prints where everything is once it is ready, and
stays in the foreground until Ctrl-C or SIGTERM (a second one stops without
waiting for the worker).  ``demo`` starts the same stack, narrates the bundled
sample through the API into ``out/``, stops everything, and exits non-zero if
anything failed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from shoal_run import Interrupted, LaunchError
from shoal_run.stack import Options, Stack

log = logging.getLogger("shoal_run")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m shoal_run",
        description="Start the whole shoal stack on this machine (make run, make demo).",
    )
    p.add_argument("command", nargs="?", choices=("run", "demo"), default="run")
    p.add_argument("--state-dir", type=Path, default=Path("state"), help="default: ./state")
    p.add_argument("--out", type=Path, default=Path("out"), help="demo output folder")
    p.add_argument("--host", default="127.0.0.1", help="address every part listens on")
    p.add_argument("--api-port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--tts-port", type=int, default=8765, help="local_tts, if started")
    p.add_argument("--s3-port", type=int, default=9000, help="the embedded S3, if started")
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=20.0,
        help="seconds the worker may take to finish its jobs on stop",
    )
    p.add_argument("--quiet", action="store_true", help="keep the parts' output in the logs only")
    p.add_argument("--verbose", action="store_true", help="demo: show the parts' output as well")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="shoal-run| %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    show = args.verbose if args.command == "demo" else not args.quiet
    options = Options(
        state_dir=args.state_dir,
        host=args.host,
        api_port=args.api_port,
        tts_port=args.tts_port,
        s3_port=args.s3_port,
        echo=sys.stdout if show else None,
        stop_timeout=args.stop_timeout,
    )
    stack = Stack(options)
    abortable = True  # a signal aborts startup and the demo; in `run` it just stops

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stack.stopping.is_set():
            stack.hurry.set()  # a second Ctrl-C: do not wait for the worker
            return
        stack.stopping.set()
        log.info("stopping (again to stop without waiting)")
        if abortable and not stack.spawning:
            raise Interrupted

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            ready = stack.start()
        except LaunchError as exc:
            log.error("%s", exc)
            return 1
        if args.command == "demo":
            for name, value in ready.rows():
                log.info("%-9s %s", name, value)
            if ready.api_key is None:
                log.error("SHOAL_TENANTS is configured: set SHOAL_API_KEY to one of its keys")
                return 1
            from shoal_run.demo import run_demo  # PyAV and friends: only the demo needs them

            ok = run_demo(ready.api_url, ready.api_key, args.out)
            print(f"demo {'passed' if ok else 'FAILED'}; files in {args.out}/")
            return 0 if ok else 1
        abortable = False
        print(ready.banner(), flush=True)
        try:
            stack.watch()
        except LaunchError as exc:
            log.error("%s", exc)
            return 1
        return 0
    except Interrupted:
        return 130
    finally:
        abortable = False  # from here on a signal only hurries the stop
        stack.stop()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
