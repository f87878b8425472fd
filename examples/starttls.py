"""A STARTTLS greeting, SMTP style: plaintext first, TLS on request.

    twistd -n tcpserver --handler examples/starttls.py --port 2525 \
        --tls-cert server.pem --ssl-start-mode EXPLICIT

Try it with ``openssl s_client -connect localhost:2525 -starttls smtp``.
The server greets in plaintext; ``STARTTLS`` switches the connection to TLS
(``start_ssl``); after the handshake ``connected`` fires again, this time
with ``tls_active`` set, and every later line is answered encrypted.
"""


def setup(server):
    server.default_eol = b"\r\n"


def on_connected(server, event):
    if event.status_code:
        return  # the STARTTLS handshake failed (the connection closes)
    if server.connections[event.connection_id].tls_active:
        return  # the second "connected", after STARTTLS: the client speaks next
    server.send_line(event.connection_id, "220 tcpserver ESMTP ready")


def on_data_in(server, event):
    if not event.eol:
        return  # a fragment the client never finished (it closed mid-line): not a command
    cid = event.connection_id
    words = event.text.upper().split()
    verb = words[0] if words else b""
    if verb in (b"EHLO", b"HELO"):
        server.send_line(cid, "250-tcpserver")
        server.send_line(cid, "250 STARTTLS")
    elif verb == b"STARTTLS":
        server.send_line(cid, "220 go ahead")
        server.start_ssl(cid)
    elif verb == b"QUIT":
        server.send_line(cid, "221 bye")
        server.disconnect(cid)
    elif verb == b"NOOP":
        secure = "encrypted" if server.connections[cid].tls_active else "plaintext"
        server.send_line(cid, f"250 OK ({secure})")
    else:
        server.send_line(cid, "502 not implemented")
