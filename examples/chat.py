"""A line-based chat: every line goes to everyone connected.

    twistd -n tcpserver --handler examples/chat.py --port 9000

Then ``nc localhost 9000`` from a few terminals.  ``/nick NAME`` picks a
name; ``/who`` lists who is here.  A slow reader never holds the others
back: its own send queue fills (and ``send`` raises 135 past the limit),
which this example treats as "drop that client".
"""

from tcpserver import TCPServerError


def _nick(server, connection_id):
    return server.connections[connection_id].user_data or f"guest{connection_id}"


def _broadcast(server, line, skip=None):
    for connection_id in list(server.connections):
        if connection_id == skip:
            continue
        try:
            server.send_line(connection_id, line)
        except TCPServerError as error:
            if error.code == 135:  # this reader cannot keep up: let it go
                server.disconnect(connection_id)


def on_connected(server, event):
    if event.status_code:
        return  # a TLS handshake that failed: nobody joined
    name = _nick(server, event.connection_id)
    server.send_line(event.connection_id, f"welcome, {name}; /nick NAME to rename, /who to list")
    _broadcast(server, f"* {name} joined", skip=event.connection_id)


def on_data_in(server, event):
    if not event.eol:
        return  # the client left mid-line: an unfinished message is not sent on
    cid = event.connection_id
    text = event.text.decode("utf-8", "replace").strip()
    if text.startswith("/nick "):
        old, new = _nick(server, cid), text[6:].strip()[:32] or _nick(server, cid)
        server.connections[cid].user_data = new
        _broadcast(server, f"* {old} is now {new}")
    elif text == "/who":
        names = sorted(_nick(server, c) for c in server.connections)
        server.send_line(cid, "* here: " + ", ".join(names))
    elif text:
        _broadcast(server, f"<{_nick(server, cid)}> {text}")


def on_disconnected(server, event):
    connection = server.connections.get(event.connection_id)
    name = (connection.user_data if connection else None) or f"guest{event.connection_id}"
    _broadcast(server, f"* {name} left", skip=event.connection_id)
