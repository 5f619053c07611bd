"""themes/ and plugins/ ship inside the wheel and load from an installed copy, and the
editable install finds them beside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, console
from console.builtin import resource_dir
from console.plugin import load_registry
registry = load_registry()
print(json.dumps({
    "package": console.__file__,
    "plugins": str(resource_dir("plugins")),
    "themes": str(resource_dir("themes")),
    "loaded": registry.loaded,
    "mappings": sorted(registry.mappings),
    "sources": sorted(registry.sources),
    "errors": [str(e) for e in registry.errors],
}))
"""


def _probe(env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, object]:
    import json

    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=True,
    )
    return json.loads(result.stdout)


def _assert_complete(found: dict[str, object]) -> None:
    assert found["errors"] == []
    assert {"agent", "engines"} <= set(found["loaded"])  # type: ignore[arg-type]
    assert {"vllm", "sglang", "tgi", "triton", "nim", "dcgm"} <= set(found["mappings"])  # type: ignore[arg-type]
    assert {"engine", "agent", "dcgm"} <= set(found["sources"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return next(out.glob("fleetdeck-*.whl"))


def test_wheel_contains_themes_plugins_and_schema(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "console/plugins/engines.py" in names
    assert "console/plugins/engines/vllm.yaml" in names
    assert any(n.startswith("console/themes/") for n in names)
    assert "console/schemas/status.schema.json" in names
    assert not any(n.startswith(("plugins/", "themes/", "tests/")) for n in names)


def test_installed_copy_loads_its_own_plugins(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    found = _probe(env, cwd=tmp_path)  # away from the checkout, so only the install is seen
    assert str(found["package"]).startswith(str(target))
    assert str(found["plugins"]) == str(target / "console" / "plugins")
    assert str(found["themes"]) == str(target / "console" / "themes")
    _assert_complete(found)


def test_editable_install_finds_top_level_folders(tmp_path: Path) -> None:
    found = _probe(cwd=tmp_path)
    assert str(found["plugins"]) == str(ROOT / "plugins")
    assert str(found["themes"]) == str(ROOT / "themes")
    _assert_complete(found)
