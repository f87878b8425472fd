"""A key-value store speaking a tiny line protocol, as a handler *class*.

    twistd -n tcpserver --handler examples/kvstore.py:KVStore --port 9000

Commands (one per line): ``SET key value``, ``GET key``, ``DEL key``,
``KEYS``.  Answers: ``OK``, ``VALUE <value>``, ``NOT_FOUND``, ``ERROR ...``.
``setup`` is async: the server listens only once it has finished (here it
loads initial data from ``KVSTORE_SEED`` - a file of ``key=value`` lines -
without blocking the reactor: the file is read in a thread).
"""

import os

from twisted.internet.threads import deferToThread


class KVStore:
    def __init__(self):
        self.data = {}

    async def setup(self, server):
        server.default_eol = b"\n"
        seed = os.environ.get("KVSTORE_SEED")
        if seed:
            text = await deferToThread(_read, seed)
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    self.data[key.strip()] = value.strip()

    def on_data_in(self, server, event):
        if not event.eol:
            return  # the client closed mid-line: an unfinished command is not run
        cid = event.connection_id
        command, _, rest = event.text.decode("utf-8", "replace").strip().partition(" ")
        command = command.upper()
        if command == "SET":
            key, _, value = rest.partition(" ")
            if not key:
                server.send_line(cid, "ERROR usage: SET key value")
                return
            self.data[key] = value
            server.send_line(cid, "OK")
        elif command == "GET":
            value = self.data.get(rest.strip())
            server.send_line(cid, "NOT_FOUND" if value is None else f"VALUE {value}")
        elif command == "DEL":
            server.send_line(
                cid, "OK" if self.data.pop(rest.strip(), None) is not None else "NOT_FOUND"
            )
        elif command == "KEYS":
            server.send_line(cid, "VALUE " + " ".join(sorted(self.data)))
        else:
            server.send_line(cid, f"ERROR unknown command {command!r}")


def _read(path):
    with open(path, encoding="utf-8") as file:
        return file.read()
