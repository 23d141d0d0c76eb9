"""The guard both local servers put in their client subprocesses: only loopback connections.

``guard(env, folder)`` puts ``tests/guard/`` first on the environment's PYTHONPATH, so its
``sitecustomize.py`` runs in the client process: every name lookup and connection to a host
other than 127.0.0.1/localhost is refused and its host written to ``blocked(folder)``. A test
that asserts ``blocked(folder) == []`` shows its client never tried to reach the real hub.
"""

from __future__ import annotations

import os
from pathlib import Path

GUARD = Path(__file__).with_name("guard")


def guard(env: dict[str, str], folder: str | os.PathLike) -> dict[str, str]:
    """``env`` with the guard on its PYTHONPATH, logging to ``blocked(folder)``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "UFKTO_TEST_GUARD_LOG": str(Path(folder) / "blocked-connections.log"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(GUARD), env.get("PYTHONPATH")) if p),
    }


def blocked(folder: str | os.PathLike) -> list[str]:
    """The hosts the guard in ``folder`` refused, in order (empty if none)."""
    log = Path(folder) / "blocked-connections.log"
    return log.read_text().splitlines() if log.exists() else []
