"""ufkto installs as a user would install it, and its command works away from the checkout.

The project is installed (not editable, without its dependencies, which this environment
has, and without the network: the test extra brings setuptools) from a copy of its files
into a folder of its own, then used from another folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import datasets

from tests.conftest import PROJECT

SHIPPED = ["pyproject.toml", "README.md", "requirements.txt", "ultrafeedback_kto.py", "publish"]


def test_a_wheel_install_gives_the_module_and_a_ufkto_command_with_its_samples(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SHIPPED:
        copy = shutil.copytree if (PROJECT / name).is_dir() else shutil.copy
        copy(PROJECT / name, source / name)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    # The wheel declares the dependencies of requirements.txt (pip installs none of them here).
    metadata = next(site.glob("ufkto-*.dist-info")).joinpath("METADATA").read_text()
    required = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    declared = [line for line in (PROJECT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert [name for name in required if "extra ==" not in name] == declared
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy, not the checkout: nothing of the project is on the path but it.
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import publish, ultrafeedback_kto; print(ultrafeedback_kto.__file__);print(publish.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(site)) for path in shown), shown

    for upstream in ("argilla-cleaned", "openbmb", "h4-binarized"):
        done = subprocess.run(
            [str(site / "bin" / "ufkto"), "build", "--sample", "--upstream", upstream, "--out", upstream],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "ufkto build --sample --upstream" in (elsewhere / upstream / "README.md").read_text()
        loaded = datasets.load_dataset(str(elsewhere / upstream), cache_dir=str(tmp_path / "cache" / upstream))
        assert sorted(loaded) == ["test", "train"] and loaded["train"].num_rows > 0
    helped = subprocess.run(
        [str(site / "bin" / "ufkto"), "push", "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert helped.stdout.startswith("usage: ufkto push")
