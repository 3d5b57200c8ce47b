"""Layers point one way: features/ and models/ import neither mlflow nor pipeline/."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff not installed")
@pytest.mark.parametrize("package", ["features", "models"])
@pytest.mark.parametrize(
    ("line", "banned"), [("import mlflow", "mlflow"), ("from pipeline import io", "pipeline")]
)
def test_pure_packages_cannot_import_the_edge(package, line, banned):
    result = subprocess.run(
        [RUFF, "check", "--select", "TID251", "--stdin-filename", f"{package}/probe.py", "-"],
        input=f"{line}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert f"`{banned}` is banned" in result.stdout


@pytest.mark.skipif(RUFF is None, reason="ruff not installed")
def test_the_edge_may_import_mlflow():
    result = subprocess.run(
        [RUFF, "check", "--select", "TID251", "--stdin-filename", "pipeline/probe.py", "-"],
        input="import mlflow\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout
