"""The layering of docs/architecture.md: core <- casebank <- reflection <- agents; nobody imports config."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each package may import from the project (besides itself).
ALLOWED = {
    "core": set(),
    "casebank": {"core"},
    "reflection": {"core", "casebank"},
    "agents": {"core", "casebank", "reflection"},
}
PROJECT = {"core", "casebank", "reflection", "agents", "config"}


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & PROJECT


def violations(package: str, root: Path = ROOT) -> list[str]:
    allowed = ALLOWED[package] | {package}
    return [
        f"{path.relative_to(root)} imports {sorted(project_imports(path) - allowed)}"
        for path in sorted((root / package).rglob("*.py"))
        if project_imports(path) - allowed
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_it_keeps_dependencies_pointing_one_way(package: str) -> None:
    assert violations(package) == []


def test_it_notices_an_import_against_the_rule(tmp_path: Path) -> None:
    (tmp_path / "casebank").mkdir()
    (tmp_path / "casebank" / "bad.py").write_text("from reflection.models import ExecutionLog\n")
    assert violations("casebank", root=tmp_path) == ["casebank/bad.py imports ['reflection']"]
