"""Deadlines for slow clients: a request's head must come, and an answer be read, in
bounded time.

uvicorn arms no timer on a connection until its first answer is complete, and any byte
that arrives cancels its keep-alive timer: a client that connects and sends nothing, or
trickles a head that never ends, holds its connection and a file descriptor for as long
as it likes, and enough such clients leave no room for anybody else (slowloris). Here a
connection waiting for a head (since it was made, or since its last answer ended) gets
`HEAD_SECONDS` in all, however many bytes come meanwhile. When they run out, one that
has sent part of a head gets a 408 and is closed; one that sent nothing is closed, as
uvicorn closes an idle keep-alive connection.

The other way round, a client that stops reading its answer leaves the server waiting
to write (uvicorn's flow control), for ever, with the request's work and, through the
proxy, its upstream connection held. A connection whose writing has been paused for
`READ_STALL_SECONDS` without a pause is cut; the application then sees the client gone,
as when it leaves. A stalled or trickled body is the application's to time out
(`wire.read_body`), as it reads it.
"""

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 30.0
READ_STALL_SECONDS = 60.0


def _timeout_answer() -> bytes:
    body = json.dumps({"error": {"type": "timeout", "message": (
        f"the request's head did not arrive within {HEAD_SECONDS:g} s")}}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)


class DeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11), with a deadline for each request's head and
    one for a client that reads nothing of its answer."""

    _head_timer: asyncio.TimerHandle | None = None
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in (or the client is gone)
            self._head_timer = _cancelled(self._head_timer)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(READ_STALL_SECONDS, self.transport.abort)

    def resume_writing(self) -> None:
        self._read_timer = _cancelled(self._read_timer)
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer = _cancelled(self._head_timer)
        self._read_timer = _cancelled(self._read_timer)
        super().connection_lost(exc)

    def _await_head(self) -> None:
        _cancelled(self._head_timer)
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head came
            self.transport.write(_timeout_answer())
        self.transport.close()


def _cancelled(timer: asyncio.TimerHandle | None) -> None:
    """Cancel `timer` if there is one; None, for the attribute that held it."""
    if timer is not None:
        timer.cancel()
