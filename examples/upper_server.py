"""A ten-line server: answers every line in upper case (python upper_server.py [port])."""

import sys

from tcpserver import TCPServer

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
server = TCPServer(local_host="127.0.0.1", local_port=port, default_eol=b"\n")
server.on("connected", lambda e: print("connected", e.connection_id, flush=True))
server.on("data_in", lambda e: server.send_line(e.connection_id, e.text.upper()))
server.on("disconnected", lambda e: print("gone", e.connection_id, e.status_code, flush=True))
server.start_listening()
print("listening on", server.local_port, flush=True)
server.run()  # until Ctrl-C / SIGTERM
