"""A handler module: ``twistd -n tcpserver --handler examples/shout.py``."""


def setup(server):
    server.default_eol = b"\n"  # lines end in LF (the same as --eol '\n')


def on_connected(server, event):
    if event.status_code:
        return  # a TLS handshake that failed (the manual's Connected with its code)
    server.send_line(event.connection_id, "welcome - say something", eol=None)


def on_data_in(server, event):
    answer = event.text.upper()
    if event.eol:  # a whole line (or the last piece of one over MaxLineLength)
        server.send_line(event.connection_id, answer, eol=None)  # in the connection's EOL
    else:
        server.send(event.connection_id, answer)
