"""The plugin API and registry.

A plugin is any object (usually a module) with `register(registry: Registry) -> None`. It adds:
- engine mappings (declarative: `console.mapping.EngineMapping`), which the `metrics` source
  applies to a Prometheus page;
- source factories by name (`metrics`, `agent`, ...): given a node and a URL, a `Source` that
  turns one response body into a `Reading`;
- fleet sources by plugin name (`prometheus`): given the config's `source`, a `FleetSource`
  that reads every node of a fleet from a query service in a few requests;
- gateway drivers by plugin name (`haproxy`, ...): given a gateway's config, a
  `console.gateway.GatewayDriver` that reads and changes one replica at a time.

Plugins are found through the entry-point group `fleetdeck.plugins` (fleetdeck's own built-ins
are registered there too, see `console.builtin`) and as `.py` files in the user plugin folder.
A plugin that fails to import or register is reported and skipped, never fatal.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from console.errors import PluginError

if TYPE_CHECKING:
    from console.fleet import GatewayConfig, NodeConfig, SourceConfig
    from console.gateway import GatewayDriver
    from console.mapping import EngineMapping
    from console.model import FleetReading, Reading

ENTRY_POINT_GROUP = "fleetdeck.plugins"
log = logging.getLogger("fleetdeck.plugin")


class Source(Protocol):
    """Decodes what one target answered. Must not do I/O: the collector owns the network."""

    url: str

    def decode(self, body: bytes) -> Reading:
        """The reading in `body`; raises SourceError with a one-line reason when it cannot."""
        ...


class FleetDecoder(Protocol):
    """One refresh's answers, decoded as each comes in: the first ones are read while the
    service still works out the rest."""

    def feed(self, index: int, status: int, body: bytes) -> None:
        """The answer to request `index` (in any order); a bad one becomes a warning."""
        ...

    def finish(self) -> FleetReading:
        """The fleet, once every answer is fed; SourceError when none was usable."""
        ...


class FleetSource(Protocol):
    """Reads a whole fleet from a query service. No I/O either: it names the requests to
    send (`POST url + path` with a form body) and decodes their answers."""

    url: str

    def requests(self, at: float) -> list[tuple[str, bytes]]:
        """(path, form body) of each request, evaluated at epoch time `at`."""
        ...

    def decoder(self, at: float) -> FleetDecoder:
        """A decoder for the answers to `requests(at)`."""
        ...


SourceFactory = Callable[["NodeConfig", str, "Registry"], Source]
FleetSourceFactory = Callable[["SourceConfig", "Registry"], FleetSource]
GatewayFactory = Callable[["GatewayConfig"], "GatewayDriver"]


@dataclass
class Registry:
    mappings: dict[str, EngineMapping] = field(default_factory=dict)
    sources: dict[str, SourceFactory] = field(default_factory=dict)
    gateways: dict[str, GatewayFactory] = field(default_factory=dict)
    fleet_sources: dict[str, FleetSourceFactory] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def add_mapping(self, mapping: EngineMapping) -> None:
        self.mappings[mapping.kind] = mapping

    def add_source(self, name: str, factory: SourceFactory) -> None:
        self.sources[name] = factory

    def add_gateway(self, plugin: str, factory: GatewayFactory) -> None:
        self.gateways[plugin] = factory

    def add_fleet_source(self, plugin: str, factory: FleetSourceFactory) -> None:
        self.fleet_sources[plugin] = factory

    def report(self, error: PluginError) -> None:
        log.warning("%s", error)
        self.errors.append(error)

    def source(self, name: str, node: NodeConfig, url: str) -> Source:
        try:
            factory = self.sources[name]
        except KeyError:
            raise PluginError(f"node {node.name}: no plugin provides the '{name}' source") from None
        return factory(node, url, self)

    def fleet_source(self, config: SourceConfig) -> FleetSource:
        try:
            factory = self.fleet_sources[config.plugin]
        except KeyError:
            raise PluginError(
                f"source: no plugin provides the '{config.plugin}' fleet source"
            ) from None
        return factory(config, self)

    def gateway(self, config: GatewayConfig) -> GatewayDriver:
        try:
            factory = self.gateways[config.plugin]
        except KeyError:
            raise PluginError(
                f"gateway {config.name}: no plugin provides the '{config.plugin}' gateway"
            ) from None
        return factory(config)


def load_plugin_file(path: Path, module_name: str | None = None) -> ModuleType:
    """Import a plugin from a `.py` file (the built-ins and the user plugin folder use this)."""
    name = module_name or f"fleetdeck_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise PluginError(f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}") from exc
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"{path}: import failed: {exc!r}") from exc
    return module


def user_plugin_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fleetdeck" / "plugins"


def _register(registry: Registry, name: str, plugin: object) -> None:
    register = getattr(plugin, "register", None)
    if not callable(register):
        raise PluginError(f"plugin {name}: has no register(registry) function")
    try:
        register(registry)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {name}: register() failed: {exc!r}") from exc
    registry.loaded.append(name)


def load_registry(user_dir: Path | None = None) -> Registry:
    """Every plugin of the entry-point group, then the user folder's `.py` files."""
    registry = Registry()
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            _register(registry, entry.name, entry.load())
        except PluginError as exc:
            registry.report(exc)
        except Exception as exc:  # a third party's import error must not stop the console
            registry.report(PluginError(f"plugin {entry.name} ({entry.value}): {exc!r}"))
    folder = user_plugin_dir() if user_dir is None else user_dir
    if folder.is_dir():
        for path in sorted(folder.glob("*.py")):
            try:
                _register(registry, path.stem, load_plugin_file(path))
            except PluginError as exc:
                registry.report(exc)
    return registry
