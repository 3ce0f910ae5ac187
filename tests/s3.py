"""A real S3-compatible server for tests, and a TCP proxy to break the way to it.

:class:`MotoS3` runs moto's ``ThreadedMotoServer`` on ``127.0.0.1:0`` in this
process: the complete S3 API, in memory, checking no signatures. Other
processes (a Celery worker under test) reach it over HTTP like any S3::

    with MotoS3() as s3:
        s3.endpoint_url     # http://127.0.0.1:PORT

:class:`TcpProxy` forwards a local port to another address. ``stop()`` closes
the listener and resets every open connection, so a client sees exactly what
an outage looks like (refused and reset connections); ``start()`` listens on
the same port again while the server behind it keeps its state::

    with TcpProxy("127.0.0.1", s3.port) as proxy:
        proxy.url           # http://127.0.0.1:PROXY_PORT
        proxy.stop(); ...; proxy.start()
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import struct
import threading
import time
from types import TracebackType

from moto.server import ThreadedMotoServer

log = logging.getLogger(__name__)

#: Credentials moto accepts (it checks no signatures, but botocore must sign something).
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class MotoS3:
    """moto's S3 in a thread of this process, on ``host:0``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: ThreadedMotoServer | None = None

    def start(self) -> MotoS3:
        """Start serving; returns self."""
        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Stop serving (moto's in-memory buckets stay with the process)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class TcpProxy:
    """Forward ``host:port`` (port 0: a free one, kept across restarts) to a target."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.accepted = 0  # connections accepted since construction
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self, bind_timeout: float = 5.0) -> TcpProxy:
        """Listen (again, on the same port after :meth:`stop`) and forward connections.

        Rebinding retries for ``bind_timeout`` seconds: between stop and start
        the kernel may lend the port to an outgoing connection for a moment.
        """
        if self._listener is not None:
            return self
        deadline = time.monotonic() + bind_timeout
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
                break
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stopping.clear()
        self._spawn(self._accept_loop, sock)
        return self

    def stop(self) -> None:
        """Refuse new connections and reset the open ones; returns once all are gone."""
        if self._listener is None:
            return
        self._stopping.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
        self._listener = None

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not sel.select(timeout=0.05):
                    continue
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                self.accepted += 1
                self._spawn(self._pipe, client)
        listener.close()  # closing the listener is what turns new connections away

    def _pipe(self, client: socket.socket) -> None:
        """Copy bytes both ways until either side closes or the proxy stops."""
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        peers = {client: upstream, upstream: client}
        for sock in peers:
            # A bounded send: a stalled peer must not keep stop() waiting.
            sock.settimeout(1.0)
        try:
            with selectors.DefaultSelector() as sel:
                for sock in peers:
                    sel.register(sock, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    for key, _ in sel.select(timeout=0.05):
                        src: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = src.recv(1 << 16)
                        if not data:  # one side closed: an orderly close of both
                            for sock in peers:
                                sock.close()
                            return
                        peers[src].sendall(data)
        except OSError:
            pass
        # Stopped (or broken): an outage as the client sees it, a reset, not a FIN.
        for sock in peers:
            _reset(sock)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
