"""Echo every line back: ``twistd -n tcpserver --handler examples/echo.py``.

(The built-in handler does the same when no ``--handler`` is given; this is
the smallest handler to start from.)
"""


def setup(server):
    server.default_eol = b"\r\n"  # lines end in CRLF (the default is raw chunks)


def on_data_in(server, event):
    # (a line over MaxLineLength arrives in pieces: only its last has eol)
    server.send(event.connection_id, event.text + (b"\r\n" if event.eol else b""))
