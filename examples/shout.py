"""A handler module for ``twistd -n tcpserver --handler shout --eol '\\n'``."""


def setup(server):
    server.default_eol = b"\n"  # lines end in LF (the same as --eol '\n')


def on_connected(server, event):
    server.send_line(event.connection_id, "welcome - say something")


def on_data_in(server, event):
    server.send_line(event.connection_id, event.text.upper())
