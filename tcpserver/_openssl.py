"""The TLS record path of an established connection, over its memory BIOs.

:class:`RecordIO` moves one connection's bytes through OpenSSL: ``feed``
the socket's bytes in, ``read`` every whole record's plaintext out,
``write`` plaintext in and ``drain`` the records made of it.  Each of these
is a loop of plain C calls through pyOpenSSL's own cffi bindings with
buffers reused across calls: pyOpenSSL's ``recv``/``send``/``bio_read``
allocate a buffer per call, check its callbacks' helpers and end every
drained read with an exception, which on a 16-line read batch costs more
than the cryptography.

This is the only module that reaches into pyOpenSSL (``OpenSSL._util``'s
bindings and a ``Connection``'s ``_ssl`` / ``_into_ssl`` / ``_from_ssl``);
:data:`REQUIRED_ATTRIBUTES` lists them and the tests check them on the
installed release.  Should a release change them, :func:`record_io` gives
the :class:`PublicRecordIO` - the same contract on pyOpenSSL's public
methods - and the server works on, slower.  Every failure is raised by
pyOpenSSL's own code (``_raise_ssl_error``), so the application sees the
exceptions - and the status codes - it always has.

One read buffer and one drain buffer serve every connection: the reactor
runs one connection's I/O at a time, and each call copies what it returns.
"""

from __future__ import annotations

from typing import Any, NoReturn

from OpenSSL.SSL import Connection, WantReadError

__all__ = ["BINDINGS", "REQUIRED_ATTRIBUTES", "PublicRecordIO", "RecordIO", "record_io"]

#: plaintext bytes one ``SSL_read`` returns at most (a TLS record's limit)
RECORD_PLAINTEXT = 2**14

#: bytes of TLS records one drain call takes from the memory BIO
_DRAIN_CHUNK = 2**16

#: what is used of a pyOpenSSL ``Connection`` made with memory BIOs
REQUIRED_ATTRIBUTES = ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error")


def _bindings() -> Any:
    try:
        from OpenSSL._util import ffi, lib

        wanted = ("SSL_read", "SSL_write", "SSL_get_error", "BIO_read", "BIO_write")
        if not all(hasattr(lib, name) for name in wanted):
            return None
        return ffi, lib, lib.SSL_ERROR_WANT_READ
    except (ImportError, AttributeError):
        return None


#: ``(ffi, lib, SSL_ERROR_WANT_READ)`` of pyOpenSSL's cffi bindings, or ``None``
BINDINGS: Any = _bindings()


class PublicRecordIO:
    """:class:`RecordIO`'s contract on pyOpenSSL's public methods (the fallback)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def feed(self, data: bytes) -> None:
        """Bytes read from the socket."""
        self._connection.bio_write(data)

    def read(self, chunks: list[bytes]) -> None:
        """
        Append the plaintext of every whole record fed so far to ``chunks``.

        :raises OpenSSL.SSL.ZeroReturnError: the peer's close_notify (after
            the records before it were appended).
        :raises OpenSSL.SSL.Error: a broken record or an alert (likewise).
        """
        recv = self._connection.recv
        try:
            while True:
                chunks.append(recv(RECORD_PLAINTEXT))
        except WantReadError:
            return

    def write(self, data: bytes) -> int:
        """Encrypt (a prefix of) ``data``; how many bytes were taken."""
        return self._connection.send(data)

    def drain(self) -> bytes:
        """Every TLS byte waiting to be sent (``b""`` if none)."""
        parts = []
        try:
            while True:
                parts.append(self._connection.bio_read(_DRAIN_CHUNK))
        except WantReadError:
            pass
        return b"".join(parts)


class RecordIO:
    """One connection's record path through OpenSSL's C calls (see the module docstring)."""

    __slots__ = ("_connection", "_from", "_into", "_ssl")

    def __init__(self, connection: Connection) -> None:
        self._connection: Any = connection
        self._ssl = self._connection._ssl
        self._into = self._connection._into_ssl
        self._from = self._connection._from_ssl

    def feed(self, data: bytes) -> None:
        """Bytes read from the socket."""
        buffer = data if type(data) is bytes else _ffi.from_buffer(data)
        if _lib.BIO_write(self._into, buffer, len(data)) != len(data):
            # (a memory BIO takes everything unless memory runs out)
            raise MemoryError("the TLS engine's memory BIO refused bytes")

    def read(self, chunks: list[bytes]) -> None:
        """See :meth:`PublicRecordIO.read`."""
        ssl = self._ssl
        ssl_read = _lib.SSL_read
        while True:
            size = ssl_read(ssl, _read_buffer, RECORD_PLAINTEXT)
            if size > 0:
                chunks.append(_read_view[:size])
                continue
            if _lib.SSL_get_error(ssl, size) == _WANT_READ:
                return  # every whole record is read
            self._fail(size)

    def write(self, data: bytes) -> int:
        """See :meth:`PublicRecordIO.write`."""
        ssl = self._ssl
        buffer = data if type(data) is bytes else _ffi.from_buffer(data)
        taken: int = _lib.SSL_write(ssl, buffer, len(data))
        if taken <= 0:
            self._fail(taken)
        return taken

    def _fail(self, result: int) -> NoReturn:
        """Raise what pyOpenSSL raises for ``result`` (a failed SSL_read or SSL_write)."""
        self._connection._raise_ssl_error(self._ssl, result)
        raise AssertionError(f"pyOpenSSL raised nothing for {result}")  # (it always raises)

    def drain(self) -> bytes:
        """See :meth:`PublicRecordIO.drain`."""
        size = _lib.BIO_read(self._from, _drain_buffer, _DRAIN_CHUNK)
        if size <= 0:
            return b""
        first: bytes = _drain_view[:size]
        if size < _DRAIN_CHUNK:
            return first
        parts = [first]
        while True:
            size = _lib.BIO_read(self._from, _drain_buffer, _DRAIN_CHUNK)
            if size <= 0:
                return b"".join(parts)
            parts.append(_drain_view[:size])


if BINDINGS is not None:
    _ffi, _lib, _WANT_READ = BINDINGS
    _read_buffer = _ffi.new("char[]", RECORD_PLAINTEXT)
    _read_view = _ffi.buffer(_read_buffer)
    _drain_buffer = _ffi.new("char[]", _DRAIN_CHUNK)
    _drain_view = _ffi.buffer(_drain_buffer)


def record_io(connection: Connection) -> RecordIO | PublicRecordIO:
    """The record path for ``connection`` (a pyOpenSSL ``Connection`` with memory BIOs)."""
    if BINDINGS is not None and all(hasattr(connection, name) for name in REQUIRED_ATTRIBUTES):
        return RecordIO(connection)
    return PublicRecordIO(connection)
