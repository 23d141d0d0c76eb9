"""The guard both local servers put in their client subprocesses: only loopback connections.

``guard(env, folder)`` writes a ``sitecustomize.py`` into ``folder`` and puts it first on the
environment's PYTHONPATH, so the client process refuses every name lookup and connection to a
host other than 127.0.0.1/localhost, and writes the host to ``blocked(folder)``. A test that
asserts ``blocked(folder) == []`` shows its client never tried to reach the real hub.
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE = '''\
"""Network guard: only loopback connections are allowed in this process."""
import os
import socket

_ALLOWED = {"127.0.0.1", "localhost", "::1", "localhost.localdomain", "", None}


def _check(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in _ALLOWED or (isinstance(host, str) and host.startswith("127.")):
        return
    with open(os.environ["UFKTO_TEST_GUARD_LOG"], "a") as log:
        log.write(f"{host}\\n")
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
'''


def guard(env: dict[str, str], folder: str | os.PathLike) -> dict[str, str]:
    """``env`` with the guard on its PYTHONPATH, logging to ``blocked(folder)``."""
    folder = Path(folder)
    (folder / "guard").mkdir(parents=True, exist_ok=True)
    (folder / "guard" / "sitecustomize.py").write_text(_SOURCE)
    return {**env, "UFKTO_TEST_GUARD_LOG": str(folder / "blocked-connections.log"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(folder / "guard"), env.get("PYTHONPATH")) if p)}  # fmt: skip


def blocked(folder: str | os.PathLike) -> list[str]:
    """The hosts the guard in ``folder`` refused, in order (empty if none)."""
    log = Path(folder) / "blocked-connections.log"
    return log.read_text().splitlines() if log.exists() else []
