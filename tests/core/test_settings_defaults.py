"""Settings have their defaults in one place, config/settings.py: a second default elsewhere
(`getattr(settings, "X", 3.5)`, `settings.Q_CLUSTER.get("retry", 360)`) drifts from the first."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "casebank", "reflection", "agents", "config", "scripts")
ONE_PLACE = ROOT / "config" / "settings.py"


def _defaults_outside_settings(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        # getattr(settings, "NAME", default)
        if (isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) == 3
                and isinstance(node.args[0], ast.Name) and node.args[0].id == "settings"
                and isinstance(node.args[1], ast.Constant)):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.args[1].value}")
        # settings.NAME.get("key", default)
        elif (isinstance(func, ast.Attribute) and func.attr == "get" and len(node.args) == 2
              and isinstance(func.value, ast.Attribute) and isinstance(func.value.value, ast.Name)
              and func.value.value.id == "settings"):
            found.append(f"{path.relative_to(root)}:{node.lineno} {func.value.attr}")
    return found


def test_it_finds_no_settings_default_outside_config_settings():
    offenders = [
        offence
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ONE_PLACE and "migrations" not in path.parts
        for offence in _defaults_outside_settings(path)
    ]
    assert offenders == []


def test_it_would_see_a_repeated_default(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        'half_life = getattr(settings, "REFLECTION_HALF_LIFE_DAYS", 3.5)\n'
        'retry = settings.Q_CLUSTER.get("retry", 360)\n'
        "secret = getattr(settings, name, '')\n"  # a name from a list: not a default of one setting
    )
    assert [line.split(" ")[1] for line in _defaults_outside_settings(module, tmp_path)] == [
        "REFLECTION_HALF_LIFE_DAYS", "Q_CLUSTER",
    ]

