"""``send_file``: stream files through a connection's send queue.

:class:`FileStreamer` is the consumer of Twisted's
:class:`~twisted.protocols.basic.FileSender` (a pull producer) for one
connection.  It pulls a bounded number of chunks per reactor turn, and only
while the connection can take them, so a file is never read whole, the
reactor is never held, and a slow client slows the reading.  Files sent while
one is in progress follow it, in order.  Only regular files are accepted:
opening a FIFO or a device could block the reactor.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from typing import IO, Protocol

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from zope.interface import implementer

from tcpserver import errors
from tcpserver.errors import TCPServerError

__all__ = ["FILE_CHUNKS_PER_TURN", "FileSink", "FileStreamer"]

#: At most this many 16 KiB file chunks are read in one reactor turn.
FILE_CHUNKS_PER_TURN = 16


class FileSink(Protocol):
    """Where a :class:`FileStreamer` puts the file's bytes (a connection's send queue)."""

    @property
    def is_gone(self) -> bool:
        """The connection is gone: start nothing more."""

    def can_take_file_bytes(self) -> bool:
        """Whether to read more of the file now."""

    def file_bytes(self, data: bytes) -> None:
        """A chunk of the file, in order."""

    def files_idle(self) -> None:
        """Nothing more to start (the last file finished or failed)."""


@implementer(interfaces.IConsumer)
class FileStreamer:
    """The files one connection is sending (the current one and those queued)."""

    def __init__(self, owner: FileSink, clock: interfaces.IReactorTime) -> None:
        self._owner = owner
        self._clock = clock
        self._sender: FileSender | None = None
        self._handle: IO[bytes] | None = None
        self._done: Deferred[int] | None = None
        self._queue: deque[tuple[str, Deferred[int]]] = deque()
        self._starting = False
        self._turn: interfaces.IDelayedCall | None = None
        #: bytes of the current file sent so far
        self.sent = 0

    @property
    def busy(self) -> bool:
        """Whether a file is being sent or waits to be."""
        return self._sender is not None or bool(self._queue)

    def send(self, path: str) -> Deferred[int]:
        """
        Queue ``path`` for sending.

        :raises TCPServerError: 10022 if it is not a regular file or does
            not exist, 10013 if it may not be read (see
            :meth:`TCPServerError.from_file_error`); the message names it.
        """
        try:
            info = os.stat(path)
        except OSError as exc:
            raise TCPServerError.from_file_error(exc, f"send_file: {path!r}") from None
        if not stat.S_ISREG(info.st_mode):
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"send_file: {path!r} is not a regular file"
            )
        done: Deferred[int] = Deferred()
        self._queue.append((path, done))
        self._next()
        return done

    def _next(self) -> None:
        """Start queued files, one at a time; a loop, never recursion."""
        if self._starting:
            return
        self._starting = True
        try:
            while self._sender is None and self._queue and not self._owner.is_gone:
                path, done = self._queue.popleft()
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - closed in _close
                except OSError as exc:
                    done.errback(TCPServerError.from_file_error(exc, f"send_file: {path!r}"))
                    continue
                self._handle = handle
                self._done = done
                self.sent = 0
                sender = FileSender()
                finished = sender.beginFileTransfer(handle, self, self._count)
                finished.addCallbacks(self._finished, self._failed)
                self.pull()  # a small file may finish right here
        finally:
            self._starting = False
        self._owner.files_idle()

    def _count(self, chunk: bytes) -> bytes:
        self.sent += len(chunk)
        return chunk

    # IConsumer, for FileSender

    def registerProducer(self, producer: interfaces.IProducer, streaming: bool) -> None:
        """FileSender starts a file."""
        assert isinstance(producer, FileSender)
        self._sender = producer

    def unregisterProducer(self) -> None:
        """FileSender read the whole file."""
        self._sender = None

    def write(self, data: bytes) -> None:
        """A chunk of the file."""
        self._owner.file_bytes(data)

    def pull(self) -> None:
        """Read more of the file while the connection can take it."""
        if self._turn is not None and self._turn.active():
            self._turn.cancel()
        self._turn = None
        owner = self._owner
        for _ in range(FILE_CHUNKS_PER_TURN):
            sender = self._sender
            if sender is None or not owner.can_take_file_bytes():
                return
            try:
                sender.resumeProducing()
            except OSError as exc:
                self._read_failed(exc)
                return
        if self._sender is not None and owner.can_take_file_bytes():
            # Transports that never push back (in-memory ones) still must not
            # have the whole file read in one reactor turn.
            self._turn = self._clock.callLater(0, self.pull)

    def _finished(self, last: bytes) -> None:
        done, sent = self._done, self.sent
        self._close()
        if done is not None:
            done.callback(sent)
        self._next()

    def _failed(self, failure: Failure) -> None:
        done = self._done
        self._close()
        if done is not None:
            done.errback(failure)
        self._next()

    def _read_failed(self, exc: OSError) -> None:
        if self._sender is not None:
            self._sender.deferred = None  # reported here instead
        done = self._done
        self._close()
        if done is not None:
            done.errback(
                TCPServerError.from_file_error(
                    exc, f"send_file: reading failed after {self.sent} bytes"
                )
            )
        self._next()

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._sender = None
        self._done = None
        if self._turn is not None and self._turn.active():
            self._turn.cancel()
        self._turn = None

    def stop(self, error: TCPServerError) -> None:
        """Fail the current file and every queued one with ``error``."""
        pending, self._queue = self._queue, deque()
        if self._sender is not None:
            self._sender.deferred = None  # FileSender would errback a bare Exception
        done = self._done
        self._close()
        if done is not None:
            done.errback(Failure(error))
        for _, queued in pending:
            queued.errback(Failure(error))
