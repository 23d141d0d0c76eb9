"""A build stopped by a signal, for real: SIGTERM (``timeout``, a scheduler, ``docker stop``)
ends as Ctrl-C does, in one line, with the previous folder as it was and nothing temporary
left; Ctrl-C while the command is still importing its libraries prints no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from publish.__main__ import main
from tests.conftest import PROJECT, files_of


def start_build(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``python -m publish build ARGS`` in a child process, its temporary folder in ``tmp_path``,
    without progress bars (its stderr is then its own lines), and Ctrl-C handled as from a
    terminal whatever this process ignores."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TMPDIR": str(temporary), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    command = [sys.executable, "-m", "publish", "build", *args]
    return subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_sigterm_during_a_build_ends_in_one_line_with_nothing_left(tmp_path, upstream_10k):
    out = tmp_path / "ufkto"
    assert main(["build", "--sample", "--configs", "default", "--out", str(out)]) == 0
    before = files_of(out)
    build = start_build(tmp_path, "--source", str(upstream_10k), "--out", str(out))
    assert build.stderr.readline() == "building config 'conversational' from the upstream\n"  # converting 10,000 pairs
    build.send_signal(signal.SIGTERM)
    assert build.stderr.read() == "error: interrupted (SIGTERM); nothing was replaced\n"
    assert build.wait(timeout=60) == 128 + signal.SIGTERM
    assert files_of(out) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tmp", "ufkto"]  # no partial folder beside it
    assert list((tmp_path / "tmp").iterdir()) == []  # no cache or shuffle folder


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see a process load a library")
def test_ctrl_c_while_importing_prints_one_line_not_a_traceback(tmp_path):
    build = start_build(tmp_path, "--sample", "--out", str(tmp_path / "ufkto"))
    maps = Path(f"/proc/{build.pid}/maps")
    # Once pyarrow's library is loaded the command is importing its libraries (about a second).
    while build.poll() is None and "libarrow" not in maps.read_text():
        pass
    build.send_signal(signal.SIGINT)
    assert build.stderr.read() == "error: interrupted; nothing was replaced\n"
    assert build.wait(timeout=60) == 128 + signal.SIGINT
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tmp"]
