"""Errors and error codes: :class:`TCPServerError` and the manual's numbers.

This module owns every error code tcpserver reports and the one place where
operating-system errors (``errno`` values, Twisted failures) are translated
into the manual's Winsock-style ``10xxx`` codes.  It does no I/O.

Codes below 1000 are the component's own (``104`` already listening, ``126``
invalid connection id, ``135`` would block, ``27x``/``28x`` TLS); codes from
10004 to 11004 are the manual's TCP/IP codes.  A few situations the manual
has no number for get codes in the ``9xx`` range, listed in :data:`MESSAGES`
and in the docs.
"""

from __future__ import annotations

import errno as _errno
import socket

from OpenSSL import SSL
from twisted.internet import error as _twisted_error
from twisted.python.failure import Failure

__all__ = [
    "MESSAGES",
    "TCPServerError",
    "code_for_errno",
    "code_for_failure",
    "describe_ssl_error",
    "description_for",
]

# --- the manual's component errors -------------------------------------------
ALREADY_LISTENING = 104
LOCAL_PORT_WHILE_LISTENING = 106
LOCAL_HOST_WHILE_LISTENING = 107
MAX_CONNECTIONS_WHILE_LISTENING = 108
MAX_LINE_LENGTH_NOW = 112
INVALID_CONNECTION_ID = 126
WOULD_BLOCK = 135

# --- TLS ---------------------------------------------------------------------
CANNOT_LOAD_SECURITY_LIBRARY = 270
CANNOT_OPEN_CERT_STORE = 271
CANNOT_FIND_CERTIFICATE = 272
CANNOT_ACQUIRE_CREDENTIALS = 273
CANNOT_FIND_CHAIN = 274
CANNOT_VERIFY_CHAIN = 275
HANDSHAKE_ERROR = 276
CERTIFICATE_VERIFY_ERROR = 280
NO_CLIENT_CERTIFICATE = 281
NO_SERVER_CERTIFICATE = 282
ENCRYPT_ERROR = 283
DECRYPT_ERROR = 284

# --- tcpserver's own additions (no number in the manual) ---------------------
LISTENER_ERROR = 900
PEER_PROTOCOL_ERROR = 901
DISCARDED_PLAINTEXT = 902
READ_IDLE = 903
WRITE_IDLE = 904
CLOSE_GRACE_EXPIRED = 905
PROXY_HEADER_TIMEOUT = 906
FRAME_TOO_LONG = 907

# --- TCP/IP (Winsock numbering, as in the manual) ----------------------------
INVALID_ARGUMENT = 10022
TOO_MANY_OPEN_FILES = 10024
NOT_SUPPORTED = 10045
ACCESS_DENIED = 10013
ADDRESS_IN_USE = 10048
CANNOT_ASSIGN_ADDRESS = 10049
CONNECTION_ABORTED = 10053
CONNECTION_RESET = 10054
CANNOT_SEND_AFTER_SHUTDOWN = 10058
TIMED_OUT = 10060
HOST_NOT_FOUND = 11001

MESSAGES: dict[int, str] = {
    0: "OK",
    100: "You cannot change the RemotePort at this time. A connection is in progress.",
    101: "You cannot change the RemoteHost at this time. A connection is in progress.",
    102: "The RemoteHost address is invalid (0.0.0.0).",
    104: "TCPServer is already listening.",
    106: "Cannot change LocalPort when TCPServer is listening.",
    107: "Cannot change LocalHost when TCPServer is listening.",
    108: "Cannot change MaxConnections when TCPServer is listening.",
    112: "You cannot change MaxLineLength at this time. A connection is in progress.",
    116: "RemotePort cannot be zero. Please specify a valid service port number.",
    126: "Invalid ConnectionId.",
    135: "Operation would block.",
    270: "Cannot load specified security library.",
    271: "Cannot open certificate store.",
    272: "Cannot find specified certificate.",
    273: "Cannot acquire security credentials.",
    274: "Cannot find certificate chain.",
    275: "Cannot verify certificate chain.",
    276: "Error during handshake.",
    280: "Error verifying certificate.",
    281: "Could not find client certificate.",
    282: "Could not find server certificate.",
    283: "Error encrypting data.",
    284: "Error decrypting data.",
    900: "An event listener raised an exception.",
    901: "The peer violated the protocol.",
    902: "Plaintext received before the TLS handshake was discarded.",
    903: "Nothing was received for ReadIdleTimeout seconds.",
    904: "Nothing was sent for WriteIdleTimeout seconds.",
    905: "The peer did not finish the close within CloseGracePeriod; the connection was reset.",
    906: "No complete PROXY protocol header within ProxyHeaderTimeout seconds.",
    907: "A length-prefixed frame is longer than MaxFrameLength.",
    10004: "Interrupted system call.",
    10009: "Bad file number.",
    10013: "Access denied.",
    10014: "Bad address.",
    10022: "Invalid argument.",
    10024: "Too many open files.",
    10035: "Operation would block.",
    10036: "Operation now in progress.",
    10037: "Operation already in progress.",
    10038: "Socket operation on nonsocket.",
    10039: "Destination address required.",
    10040: "Message is too long.",
    10041: "Protocol wrong type for socket.",
    10042: "Bad protocol option.",
    10043: "Protocol is not supported.",
    10044: "Socket type is not supported.",
    10045: "Operation is not supported on socket.",
    10046: "Protocol family is not supported.",
    10047: "Address family is not supported by protocol family.",
    10048: "Address already in use.",
    10049: "Cannot assign requested address.",
    10050: "Network is down.",
    10051: "Network is unreachable.",
    10052: "Net dropped connection or reset.",
    10053: "Software caused connection abort.",
    10054: "Connection reset by peer.",
    10055: "No buffer space available.",
    10056: "Socket is already connected.",
    10057: "Socket is not connected.",
    10058: "Cannot send after socket shutdown.",
    10059: "Too many references, cannot splice.",
    10060: "Connection timed out.",
    10061: "Connection refused.",
    10062: "Too many levels of symbolic links.",
    10063: "File name is too long.",
    10064: "Host is down.",
    10065: "No route to host.",
    10066: "Directory is not empty",
    10067: "Too many processes.",
    10068: "Too many users.",
    10069: "Disc Quota Exceeded.",
    10070: "Stale NFS file handle.",
    10071: "Too many levels of remote in path.",
    10091: "Network subsystem is unavailable.",
    10092: "WINSOCK DLL Version out of range.",
    10093: "Winsock is not loaded yet.",
    11001: "Host not found.",
    11002: "Nonauthoritative 'Host not found' (try again or check DNS setup).",
    11003: "Nonrecoverable errors: FORMERR, REFUSED, NOTIMP.",
    11004: "Valid name, no data record (check DNS setup).",
}

# errno name -> Winsock code.  Winsock numbers 10035..10071 follow the BSD
# errno order, not Linux's, so the table is keyed by name and resolved
# against this platform's errno module at import time.
_WSA_BY_ERRNO_NAME = {
    "EINTR": 10004,
    "EBADF": 10009,
    "EACCES": 10013,
    "EPERM": 10013,
    "EFAULT": 10014,
    "EINVAL": 10022,
    "EMFILE": 10024,
    "ENFILE": 10024,
    "EWOULDBLOCK": 10035,
    "EAGAIN": 10035,
    "EINPROGRESS": 10036,
    "EALREADY": 10037,
    "ENOTSOCK": 10038,
    "EDESTADDRREQ": 10039,
    "EMSGSIZE": 10040,
    "EPROTOTYPE": 10041,
    "ENOPROTOOPT": 10042,
    "EPROTONOSUPPORT": 10043,
    "ESOCKTNOSUPPORT": 10044,
    "EOPNOTSUPP": 10045,
    "ENOTSUP": 10045,
    "EPFNOSUPPORT": 10046,
    "EAFNOSUPPORT": 10047,
    "EADDRINUSE": 10048,
    "EADDRNOTAVAIL": 10049,
    "ENETDOWN": 10050,
    "ENETUNREACH": 10051,
    "ENETRESET": 10052,
    "ECONNABORTED": 10053,
    "ECONNRESET": 10054,
    "EPIPE": 10054,
    "ENOBUFS": 10055,
    "ENOMEM": 10055,
    "EISCONN": 10056,
    "ENOTCONN": 10057,
    "ESHUTDOWN": 10058,
    "ETOOMANYREFS": 10059,
    "ETIMEDOUT": 10060,
    "ECONNREFUSED": 10061,
    "ELOOP": 10062,
    "ENAMETOOLONG": 10063,
    "EHOSTDOWN": 10064,
    "EHOSTUNREACH": 10065,
    "ENOTEMPTY": 10066,
    "EPROCLIM": 10067,
    "EUSERS": 10068,
    "EDQUOT": 10069,
    "ESTALE": 10070,
    "EREMOTE": 10071,
}
_WSA_BY_ERRNO: dict[int, int] = {}
for _name, _code in _WSA_BY_ERRNO_NAME.items():
    _number = getattr(_errno, _name, None)
    if _number is not None:
        _WSA_BY_ERRNO.setdefault(_number, _code)

# getaddrinfo() failures -> the manual's 1100x host-resolution codes
_GAI_CODES = {
    socket.EAI_NONAME: HOST_NOT_FOUND,
    socket.EAI_AGAIN: 11002,
    socket.EAI_FAIL: 11003,
}
if hasattr(socket, "EAI_NODATA"):
    _GAI_CODES[socket.EAI_NODATA] = 11004


def description_for(code: int) -> str:
    """
    The manual's text for ``code``.

    :param code: any code tcpserver reports.
    :returns: the description, or ``"Error <code>."`` for a number the manual
        does not list.
    """
    return MESSAGES.get(code, f"Error {code}.")


class TCPServerError(Exception):
    """
    The one exception tcpserver raises for misuse, bad values and OS errors.

    :ivar code: the manual's error number (``126``, ``135``, ``10048``...).
    :ivar description: a human-readable message; it shows the offending
        value when there is one.
    """

    code: int
    description: str

    def __init__(self, code: int, description: str | None = None) -> None:
        self.code = code
        self.description = description or description_for(code)
        super().__init__(code, self.description)

    def __str__(self) -> str:
        return f"[{self.code}] {self.description}"

    @classmethod
    def from_file_error(cls, exc: OSError, context: str) -> TCPServerError:
        """
        A file's :class:`OSError` (``send_file``) as one of the manual's
        codes: its Winsock twin where the manual has one (10013 access
        denied, 10024 too many open files, 10063 name too long...), else
        10022 - never an errno-derived code the manual does not list.  The
        message names the file (in ``context``) and the system's reason.
        """
        code = code_for_errno(exc.errno)
        if code not in MESSAGES or code == CONNECTION_ABORTED:
            code = INVALID_ARGUMENT
        return cls(code, f"{context}: {exc.strerror or exc}")

    @classmethod
    def from_os_error(cls, exc: OSError, context: str = "") -> TCPServerError:
        """
        Translate an :class:`OSError` (including ``socket.gaierror``) into the
        manual's code; this is the single OS-error boundary.

        :param exc: the error raised by the socket layer.
        :param context: what was being attempted, prefixed to the message.
        """
        if isinstance(exc, socket.gaierror):
            code = _GAI_CODES.get(exc.errno or 0, CANNOT_ASSIGN_ADDRESS)
        else:
            code = code_for_errno(exc.errno)
        text = f"{description_for(code)} ({exc.strerror or exc})"
        return cls(code, f"{context}: {text}" if context else text)


def code_for_errno(number: int | None) -> int:
    """
    The manual's ``10xxx`` code for an ``errno`` value.

    :param number: an ``errno`` value, or ``None``.
    :returns: the matching Winsock-style code; ``10000 + number`` when the
        manual has no equivalent (so the original errno stays recoverable).
    """
    if number is None:
        return CONNECTION_ABORTED
    return _WSA_BY_ERRNO.get(number, 10000 + number)


def describe_ssl_error(error: SSL.Error) -> str:
    """OpenSSL's reasons, readable: ``unsupported protocol; no shared cipher``."""
    reasons = error.args[0] if error.args else []
    if isinstance(reasons, list) and reasons:
        texts = [str(r[-1]) for r in reasons if isinstance(r, tuple) and r and r[-1]]
        if texts:
            return "; ".join(texts)
    return str(error) or type(error).__name__


def code_for_failure(reason: Failure) -> tuple[int, str]:
    """
    ``(status_code, description)`` for a ``connectionLost`` reason.

    A clean close is ``(0, "OK")``.  Twisted does not keep the errno of a
    failed ``recv``/``send``; a non-clean loss of a stream socket is nearly
    always a reset by the peer, so it maps to 10054 unless the failure
    carries an errno of its own.

    :param reason: the failure Twisted passed to ``connectionLost``.
    """
    value = reason.value
    if isinstance(value, _twisted_error.ConnectionDone):
        return 0, "OK"
    if isinstance(value, SSL.Error):
        return HANDSHAKE_ERROR, f"{description_for(HANDSHAKE_ERROR)} ({describe_ssl_error(value)})"
    number = getattr(value, "osError", None) or getattr(value, "errno", None)
    if isinstance(number, int):
        code = code_for_errno(number)
        return code, description_for(code)
    if isinstance(value, OSError) and value.errno is not None:
        code = code_for_errno(value.errno)
        return code, description_for(code)
    if isinstance(value, _twisted_error.ConnectionAborted):
        return CONNECTION_ABORTED, description_for(CONNECTION_ABORTED)
    if isinstance(value, _twisted_error.ConnectionLost):
        return CONNECTION_RESET, description_for(CONNECTION_RESET)
    if isinstance(value, _twisted_error.TimeoutError):
        return TIMED_OUT, description_for(TIMED_OUT)
    return CONNECTION_ABORTED, f"{description_for(CONNECTION_ABORTED)} ({value})"
