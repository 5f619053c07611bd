"""fleetdeck's own plugins, named in the `fleetdeck.plugins` entry-point group.

The built-ins live in the top-level `plugins/` folder, written against the same API a third
party uses. A wheel packs that folder as `console/plugins`; a source checkout (and an editable
install) has it beside the package. An entry point `console.builtin:NAME` loads
`plugins/NAME.py` from whichever of the two exists.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from console.plugin import load_plugin_file


def resource_dir(name: str) -> Path:
    """A data folder shipped with fleetdeck (`plugins`, `themes`), installed or not."""
    packaged = Path(__file__).resolve().parent / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / name


def __getattr__(name: str) -> ModuleType:
    path = resource_dir("plugins") / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        raise AttributeError(f"no built-in plugin {name!r} in {path.parent}")
    module = load_plugin_file(path, module_name=f"fleetdeck_builtin_{name}")
    globals()[name] = module  # load once per process
    return module
