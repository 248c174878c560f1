"""Packaging: the wheel installs the library alone (the studies in ``experiments/`` run from a checkout), with
the console scripts of ``[project.scripts]`` and the version of ``seq2seq_jax.__version__``, its one source;
each console script runs its tool's module as ``python -m seq2seq_jax.<tool>`` does.

The wheel is built with pip from a copy of the project's files (a build writes ``build/`` and
``*.egg-info`` beside its sources), fetching the build backend as ``pip install`` does.
"""

import configparser
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

import seq2seq_jax

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {  # console script -> the module it runs, and flags of that tool its --help must list
    "seq2seq-train": ("main", ["config", "workdir", "dry_run"]),
    "seq2seq-evaluate": ("evaluate", ["workdir", "split", "checkpoint"]),
    "seq2seq-translate": ("translate", ["workdir", "input", "output", "attention_plots"]),
    "seq2seq-average": ("average", ["workdir", "last", "steps", "output"]),
}


def pyproject() -> dict:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), source)
    for name in ("seq2seq_jax", "experiments", "benchmarks"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                   check=True, capture_output=True, timeout=300)
    (path,) = dist.glob("*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_the_library_alone_with_its_console_scripts_and_version(wheel):
    dist_info = f"seq2seq_jax-{seq2seq_jax.__version__}.dist-info"
    assert {name.split("/")[0] for name in wheel.namelist()} == {"seq2seq_jax", dist_info}  # no experiments/
    assert "seq2seq_jax/configs/tiny.py" in wheel.namelist() and "seq2seq_jax/scripts.py" in wheel.namelist()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {
        script: f"seq2seq_jax.scripts:{module if module != 'main' else 'train'}"
        for script, (module, _) in SCRIPTS.items()}
    assert f"\nVersion: {seq2seq_jax.__version__}\n" in wheel.read(f"{dist_info}/METADATA").decode()


def test_the_version_is_written_once():
    project = pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "seq2seq_jax.__version__"}


def test_each_console_script_runs_its_tools_module(tmp_path):
    """``--help`` of each ``[project.scripts]`` target shows its tool's docstring and flags: absl shows those of
    ``__main__``, as for ``python -m seq2seq_jax.<tool> --help`` (which, like it, ends with absl's status 1)."""
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
    scripts = pyproject()["project"]["scripts"]
    assert sorted(scripts) == sorted(SCRIPTS)
    runs = {}
    for script, target in scripts.items():
        module, function = target.split(":")
        code = f"import sys; sys.argv = [{script!r}, '--help']; from {module} import {function}; {function}()"
        runs[script] = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for script, run in runs.items():
        output = run.communicate(timeout=180)[0]
        tool, flags = SCRIPTS[script]
        assert run.returncode == 1 and output.startswith(
            importlib.import_module(f"seq2seq_jax.{tool}").__doc__.splitlines()[0]), (script, output[-2000:])
        assert all(re.search(rf"\n  --(\[no\])?{flag}:", output) for flag in flags), (script, output)
