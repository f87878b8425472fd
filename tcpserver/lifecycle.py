"""A connection's lifecycle as data: its states and every allowed move.

A connection is in exactly one :class:`State`; :data:`MOVES` lists, for
each state, the states it may move to, and :func:`check_move` is the one
function every move goes through (:meth:`TCPServerProtocol._move
<tcpserver.protocol.TCPServerProtocol>` calls it).  An illegal move is a
bug in tcpserver, never the peer's or the application's doing: it raises
:class:`LifecycleError` at once, as h11's state machine does.

::

    NEW ──► REQUESTING ──► HANDSHAKING ──► OPEN ◄──► UPGRADING
     │          │               │           │  │         │
     │          ▼               ▼           │  ▼         │
     └───────► REFUSED ◄────────┘           │ INPUT_ENDED│
                                            ▼  │         │
                                        DRAINING ◄───────┘
                                            │
                                            ▼
                                         CLOSING ──► LOST ──► FAREWELL ──► CLOSED

(most states can also go straight to LOST when the transport goes, and
OPEN, INPUT_ENDED and UPGRADING to CLOSING when the connection is reset;
OPEN and LOST go straight to CLOSED when nothing is left to deliver and
nobody listens to ``disconnected``; a connection that never opened goes
to CLOSED from where it was.)

What each state waits for:

* ``NEW``: ``connectionMade``.
* ``REQUESTING``: the PROXY header, admission control and the
  ``connection_request`` decision.  Not in ``connections`` yet.
* ``HANDSHAKING``: the TLS handshake (or, for DETECT, the first byte)
  before the connection opens.  Sends are taken and held.
* ``OPEN``: nothing - data flows both ways.
* ``UPGRADING``: a STARTTLS handshake on an open connection.
* ``INPUT_ENDED``: the peer half-closed; what it sent is being delivered
  and answered.
* ``DRAINING``: closing; no new sends; queued output and files still go out.
* ``CLOSING``: the transport was told to close (or reset); waiting for it.
* ``LOST``: the transport is gone; what was received is being delivered
  (a last ``data_in`` with ``eol=False`` for an unfinished line).
* ``FAREWELL``: ``disconnected`` is being told.
* ``CLOSED``: every event delivered; forgotten.
* ``REFUSED``: never opened (refused, or TLS never came up): no
  ``connected`` and no ``disconnected``, ever.

This module holds no behaviour beyond the table; it does no I/O.
"""

from __future__ import annotations

import enum

__all__ = [
    "CLOSED",
    "CLOSE_CALLED",
    "CLOSING",
    "DELIVERING",
    "DRAINING",
    "ENDED",
    "FAREWELL",
    "HANDSHAKING",
    "INPUT_ENDED",
    "LOST",
    "MOVES",
    "NEW",
    "OPEN",
    "PAUSE_ASYNC",
    "PAUSE_FLOW",
    "PAUSE_PENDING",
    "PAUSE_USER",
    "REFUSED",
    "REQUESTING",
    "SENDABLE",
    "UPGRADING",
    "WAS_OPEN",
    "LifecycleError",
    "State",
    "check_move",
]


class State(enum.IntEnum):
    """Where a connection is in its life (see the module docstring)."""

    NEW = 0
    REQUESTING = 1
    HANDSHAKING = 2
    OPEN = 3
    UPGRADING = 4
    INPUT_ENDED = 5
    DRAINING = 6
    CLOSING = 7
    LOST = 8
    FAREWELL = 9
    CLOSED = 10
    REFUSED = 11


# The states as module constants: ``State.OPEN`` is an attribute lookup
# on the enum's metaclass (about 80 ns on CPython 3.11), a module global is
# not, and the protocol compares states on every read and close.
NEW = State.NEW
REQUESTING = State.REQUESTING
HANDSHAKING = State.HANDSHAKING
OPEN = State.OPEN
UPGRADING = State.UPGRADING
INPUT_ENDED = State.INPUT_ENDED
DRAINING = State.DRAINING
CLOSING = State.CLOSING
LOST = State.LOST
FAREWELL = State.FAREWELL
CLOSED = State.CLOSED
REFUSED = State.REFUSED


class LifecycleError(RuntimeError):
    """An illegal move between states: a bug in tcpserver."""


S = State

#: Every allowed move.
MOVES: dict[State, frozenset[State]] = {
    S.NEW: frozenset({S.REQUESTING, S.OPEN, S.REFUSED, S.CLOSED}),
    S.REQUESTING: frozenset({S.HANDSHAKING, S.OPEN, S.REFUSED, S.CLOSED}),
    S.HANDSHAKING: frozenset({S.OPEN, S.REFUSED, S.CLOSED}),
    S.OPEN: frozenset(
        {S.UPGRADING, S.INPUT_ENDED, S.DRAINING, S.CLOSING, S.LOST, S.FAREWELL, S.CLOSED}
    ),
    S.UPGRADING: frozenset({S.OPEN, S.CLOSING, S.LOST}),
    S.INPUT_ENDED: frozenset({S.DRAINING, S.CLOSING, S.LOST}),
    S.DRAINING: frozenset({S.CLOSING, S.LOST}),
    S.CLOSING: frozenset({S.LOST}),
    S.LOST: frozenset({S.FAREWELL, S.CLOSED}),
    S.FAREWELL: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.REFUSED: frozenset({S.CLOSED}),
}

#: Sends are taken (queued and held while TLS starts).
SENDABLE = frozenset({S.HANDSHAKING, S.OPEN, S.UPGRADING, S.INPUT_ENDED})

#: ``data_in`` may be delivered (unless paused by the application).
DELIVERING = frozenset({S.OPEN, S.INPUT_ENDED, S.DRAINING, S.CLOSING, S.LOST})

#: ``connected`` has fired (a ``disconnected`` is owed).
WAS_OPEN = frozenset(
    {S.OPEN, S.UPGRADING, S.INPUT_ENDED, S.DRAINING, S.CLOSING, S.LOST, S.FAREWELL}
)

#: The transport is gone, or was never used.
ENDED = frozenset({S.LOST, S.FAREWELL, S.CLOSED})

#: The transport was told to close.
CLOSE_CALLED = frozenset({S.CLOSING, S.REFUSED})

# Why reading from the socket is paused: a bit set beside the state (the
# connection reads while it is 0; see TCPServerProtocol._reading_blocked).
PAUSE_USER = 1  #: pause_data()
PAUSE_FLOW = 2  #: the send queue is above its high-water mark
PAUSE_ASYNC = 4  #: an async listener of this connection has not finished
PAUSE_PENDING = 8  #: connection_request / a TLS listener has not decided yet


def check_move(old: State, new: State) -> None:
    """
    Allow ``old -> new`` or raise.

    :raises LifecycleError: the move is not in :data:`MOVES`.
    """
    if new not in MOVES[old]:
        raise LifecycleError(f"a connection cannot go from {old.name} to {new.name}")
