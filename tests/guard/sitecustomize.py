"""Network guard: only loopback connections in this process (put first on a test client's PYTHONPATH
by `tests/network_guard.py`, so Python runs it at start-up)."""

import os
import socket

_ALLOWED = {"127.0.0.1", "localhost", "::1", "localhost.localdomain", "", None}


def _check(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in _ALLOWED or (isinstance(host, str) and host.startswith("127.")):
        return
    with open(os.environ["UFKTO_TEST_GUARD_LOG"], "a") as log:
        log.write(f"{host}\n")
    raise OSError(f"network guard: connection to {host!r} is not allowed")


_getaddrinfo, _connect, _connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex


def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)


def _check_address(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        _check(address[0])


def connect(self, address):
    _check_address(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check_address(self, address)
    return _connect_ex(self, address)


socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = getaddrinfo, connect, connect_ex
