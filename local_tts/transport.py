"""uvicorn's WebSocket protocol with two hooks fault injection needs.

ASGI gives an application no way to drop a TCP connection without a close
frame, or to stop answering pings; both are faults a real provider shows.  This
subclass puts two callables in the scope under ``local_tts.transport``:
``abort()`` drops the connection, ``stall()`` ignores every byte from then on
(so pings go unanswered).

It also keeps the protocol's promise for a message too big even to buffer:
the peer gets ``finish``/``error`` saying so before the 1009 close.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame, Opcode

from local_tts.live import TRANSPORT_EXTENSION
from worker.fish import Finish, FinishReason, encode_server_event

#: How long a connection that sent a too-big message is drained before it is closed.
DRAIN_SECONDS = 10.0


class FaultableWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` plus abort/stall hooks for fault injection."""

    _stalled = False
    _draining = False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # only set when the handshake went on to the app
            scope["extensions"][TRANSPORT_EXTENSION] = {
                "abort": self._abort,
                "stall": self._stall,
            }

    def _abort(self) -> None:
        self.transport.abort()

    def _stall(self) -> None:
        self._stalled = True

    def data_received(self, data: bytes) -> None:
        if self._stalled or self._draining:
            return
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        if isinstance(self.conn.parser_exc, PayloadTooBig):
            limit = self.config.ws_max_size
            finish = Finish(FinishReason.ERROR, f"message is over the limit of {limit} bytes")
            frame = Frame(Opcode.BINARY, encode_server_event(finish))
            # The connection is already failing, so write the frame ourselves, ahead of the close.
            self.transport.write(frame.serialize(mask=False, extensions=[]))
            assert self.conn.close_sent is not None
            self.queue.put_nowait(
                {"type": "websocket.disconnect", "code": self.conn.close_sent.code, "reason": ""}
            )
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            # Closing now, with the rest of the message unread, would make the kernel send
            # a reset that destroys both frames.  Drain instead; the peer closes once it
            # has read them.
            self._draining = True
            self.loop.call_later(DRAIN_SECONDS, self.transport.close)
            return
        super().handle_parser_exception()
