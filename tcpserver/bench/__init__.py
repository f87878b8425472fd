"""Benchmarks: ``python -m tcpserver.bench serve`` and ``python -m tcpserver.bench run``.

``serve`` is the echo server of ``../shared/bench``'s "newserver" contract:
it binds 127.0.0.1:PORT, runs a :class:`~tcpserver.TCPServer` whose
``data_in`` listener sends every line back followed by ``b"\\n"`` through the
public API, and exits on SIGTERM.
"""
