"""Layers point one way, and the tree says so.

- features/ and models/ import neither mlflow nor pipeline/ (ruff's banned-api, probed here);
- a stage never imports another stage, the main job, the CLI or the lab; the edge I/O and the
  shared steps import no stage; only the lab and the CLI import the lab (read from the source
  with ``ast``, so an import inside a function counts too);
- every output file is named once, in the catalog.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io import catalog

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """Every pipeline module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if _is_module(f"{node.module}.{alias.name}")
            }
    return {name for name in found if name.startswith("pipeline")}


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (PIPELINE / folder).rglob("*.py"))


STAGES = [p for p in _modules("stages") if p.name != "__init__.py"]


def test_the_tree_has_the_four_rooms():
    rooms = {p.name for p in PIPELINE.iterdir() if (p / "__init__.py").exists()}
    assert rooms == {"io", "stages", "shared", "synthetic", "lab"}
    for room in rooms:
        doc = ast.get_docstring(ast.parse((PIPELINE / room / "__init__.py").read_text()))
        assert doc, f"pipeline/{room}/__init__.py says in a line what the room is for"


def test_the_layering_check_sees_imports_inside_functions(tmp_path):
    # given a stage-like module that imports another stage inside a function
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from pipeline.stages import score\n    return score\n")
    # then the check finds it
    assert "pipeline.stages.score" in imports_of(probe)


@pytest.mark.parametrize("stage", STAGES, ids=lambda p: p.stem)
def test_a_stage_imports_no_other_stage_and_not_the_lab(stage):
    own = _module(stage)
    bad = {
        name
        for name in imports_of(stage)
        if (name.startswith("pipeline.stages.") and name != own)
        or name.startswith(("pipeline.lab", "pipeline.flow", "pipeline.cli"))
    }
    assert not bad, f"{own} imports {sorted(bad)}: share through pipeline.io or pipeline.shared"


@pytest.mark.parametrize("room", ["io", "shared", "synthetic"])
def test_io_shared_and_the_world_import_no_stage_and_not_the_lab(room):
    for path in _modules(room):
        bad = {
            n
            for n in imports_of(path)
            if n.startswith(("pipeline.stages", "pipeline.lab", "pipeline.flow", "pipeline.cli"))
        }
        assert not bad, f"{_module(path)} imports {sorted(bad)}"


def test_only_the_lab_and_the_cli_import_the_lab():
    for path in sorted(PIPELINE.rglob("*.py")):
        if "lab" in path.relative_to(PIPELINE).parts or path.name == "cli.py":
            continue
        assert not {n for n in imports_of(path) if n.startswith("pipeline.lab")}, path


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    }


def test_every_output_file_is_named_once_in_the_catalog():
    outputs = [v for v in vars(catalog).values() if isinstance(v, catalog.Output)]
    names = {o.file for o in outputs}
    assert {"scores.parquet", "plans.parquet", "index.html", "training_set.parquet"} <= names
    for path in sorted(PIPELINE.rglob("*.py")):
        if path.name == "catalog.py" or "synthetic" in path.parts:
            continue
        spelled = {s for s in _string_constants(path) for n in names if s.endswith(n)}
        assert not spelled, f"{path.relative_to(ROOT)} spells {sorted(spelled)}: ask the catalog"


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


def test_the_installed_package_installs_nothing_at_run_time():
    for path in sorted([*PIPELINE.rglob("*.py"), *(ROOT / "features").rglob("*.py"),
                        *(ROOT / "models").rglob("*.py")]):  # fmt: skip
        calls = [s for s in _string_constants(path) if s in ("install", "download")]
        assert not ("pip" in _string_constants(path) and calls), (
            f"{path.relative_to(ROOT)} runs pip at run time: install through the Makefile"
        )
