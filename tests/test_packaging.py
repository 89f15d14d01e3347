"""The installed layout: adapters import as `imagegen.providers.*`, never as a bare `providers`,
and every package folder is in pyproject's explicit package list."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_under_its_installed_name():
    tool = _pyproject()["tool"]["setuptools"]
    mapping = {folder: name for name, folder in tool["package-dir"].items()}
    found = set()
    for init in list((ROOT / "imagegen").rglob("__init__.py")) + list((ROOT / "providers").rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT).as_posix()
        top = rel.split("/")[0]
        prefix = mapping.get(top, top)
        found.add(".".join([prefix, *rel.split("/")[1:]]))
    assert found == set(tool["packages"])


def test_entry_points_name_the_installed_adapters():
    points = {e.name: e.value for e in entry_points(group="imagegen.providers")}
    assert points["local"] == "imagegen.providers.local:LocalProvider"
    assert points["replicate"] == "imagegen.providers.replicate:ReplicateProvider"


def test_no_bare_providers_package_is_importable_outside_the_repo(tmp_path):
    code = ("import importlib.util, imagegen.providers.replicate as r\n"
            "print(importlib.util.find_spec('providers') is None, r.ReplicateProvider.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "imagegen.providers.replicate._provider"]


def test_adapter_internals_are_private_modules():
    for sub in ("local", "replicate"):
        names = [p.name for p in (ROOT / "providers" / sub).glob("*.py")]
        assert all(n == "__init__.py" or n.startswith("_") for n in names), names
