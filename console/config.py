"""Loading and validating `fleet.yaml` into a `FleetConfig`, with file:line:col issues.

Defaults live in `console.fleet`; the file overlays them: fleet-wide `refresh` and `alerts`,
overridden per pool, and `refresh` again per node (node over pool over fleet). The YAML is
composed into marked nodes (`console._yamlnodes`) and walked here by hand, so every issue names
the line and column of the offending key or value, and every issue is reported, not the first.
`examples/fleet.reference.yaml` documents each key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from yaml.nodes import Node

from console._yamlnodes import (
    Entries,
    NodeReader,
    YamlProblem,
    describe,
    did_you_mean,
    is_null,
    join_path,
    load_tree,
    position,
)
from console.durations import parse_duration
from console.errors import ConfigError
from console.fleet import (
    COMMAND_PLACEHOLDERS,
    COMMAND_SCOPES,
    ENGINE_KINDS,
    SOURCE_FIGURES,
    Alerts,
    CommandConfig,
    FleetConfig,
    GatewayConfig,
    NodeConfig,
    PoolConfig,
    Refresh,
    Route,
    SecretRef,
    SourceConfig,
    SourceLabels,
    Threshold,
)

__all__ = [
    "ConfigIssue",
    "InvalidConfigError",
    "check_config",
    "find_config",
    "load_config",
    "parse_duration",
]

_TOP_KEYS = (
    "refresh",
    "alerts",
    "read_only",
    "audit_log",
    "theme",
    "commands",
    "gateways",
    "pools",
    "source",
)
_SOURCE_KEYS = (
    "plugin",
    "url",
    "refresh",
    "window",
    "labels",
    "discover",
    "figures",
    "server",
    "agent",
    "gateway",
    "backend",
    "token_env",
    "token_file",
)
_SOURCE_LABEL_KEYS = ("node", "pool", "gateway")
# what each template of a source may name
_SOURCE_TEMPLATES = {"server": ("node", "pool"), "agent": ("node", "pool"), "backend": ("pool",)}
_COMMAND_KEYS = ("name", "key", "scope", "argv", "confirm", "dangerous", "timeout")
# keys the console binds itself: an operator command cannot take them
RESERVED_KEYS = frozenset("duFfbaspqr?:/") | {"enter", "escape", "tab", "ctrl+p", "ctrl+c"}
_REFRESH_KEYS = ("interval", "timeout")
_ALERT_KEYS = tuple(field.name for field in fields(Alerts))
_THRESHOLD_KEYS = ("warn", "crit")
_GATEWAY_KEYS = ("name", "plugin", "endpoints", "refresh", "token_env", "token_file")
_POOL_KEYS = (
    "name",
    "model",
    "gateway",
    "backend",
    "route",
    "standby",
    "min_healthy",
    "max_unavailable",
    "capacity",
    "alerts",
    "refresh",
    "nodes",
)
_ROUTE_KEYS = ("map", "key")
_NODE_KEYS = (
    "name",
    "engine",
    "url",
    "metrics_url",
    "agent",
    "dcgm",
    "server",
    "capacity",
    "refresh",
    "token_env",
    "token_file",
)
_LITERAL_SECRET_KEYS = frozenset({"token", "password", "secret", "api_key", "apikey"})
# How each alert's warn/crit figures read: fractions 0..1, counts, durations or plain numbers.
_THRESHOLD_KINDS = {
    "error_rate": "fraction",
    "waiting": "count",
    "kv_cache_usage": "fraction",
    "ttft_p95_s": "duration",
    "gpu_temp": "number",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN_ISSUES = 5  # in a ConfigError's message; the rest are counted
_REFRESH_WHAT = "a mapping like {interval: 2s, timeout: 1s}"
_ALERTS_WHAT = "a mapping of alert thresholds"
_ROUTE_WHAT = "a mapping like {map: FILE, key: KEY}"
_ENDPOINTS_NEED = "a gateway needs an endpoint (tcp://HOST:PORT or unix:///path)"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class InvalidConfigError(ConfigError):
    """A config file with issues; `issues` holds all of them, the message the first few."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        lines = [str(issue) for issue in issues[:_SHOWN_ISSUES]]
        if len(issues) > _SHOWN_ISSUES:
            lines.append(f"and {len(issues) - _SHOWN_ISSUES} more")
        super().__init__("\n".join(lines))
        self.issues = tuple(issues)


def find_config(explicit: str | None) -> Path | None:
    """The fleet config to use: `explicit` (-c), $FLEETDECK_CONFIG, ./fleet.yaml, then
    $XDG_CONFIG_HOME/fleetdeck/fleet.yaml (~/.config when unset). None when there is none;
    a named file (-c or the variable) that does not exist is an error."""
    for named, source in (
        (explicit, "-c"),
        (os.environ.get("FLEETDECK_CONFIG"), "FLEETDECK_CONFIG"),
    ):
        if named:
            path = Path(named).expanduser()
            if not path.exists():
                raise ConfigError(f"config file {named} (from {source}) does not exist")
            return path
    local = Path("fleet.yaml")
    if local.is_file():
        return local
    config_home = os.environ.get("XDG_CONFIG_HOME")
    if not config_home or not os.path.isabs(config_home):  # the XDG spec ignores relative paths
        config_home = str(Path.home() / ".config")
    user = Path(config_home) / "fleetdeck" / "fleet.yaml"
    return user if user.is_file() else None


Reader = TypeVar("Reader", bound=NodeReader)
Built = TypeVar("Built")


def check_config(path: str | Path) -> tuple[FleetConfig | None, list[ConfigIssue]]:
    """The fleet a file describes and every issue found in it (the fleet is None unless the
    file has no issue at all)."""
    return check_file(path, FleetReader, FleetReader.read)


def check_file(
    path: str | Path,
    reader: Callable[[Path], Reader],
    read: Callable[[Reader, Node | None, str], Built | None],
) -> tuple[Built | None, list[ConfigIssue]]:
    """What `read` builds from the YAML file at `path` with a fresh `reader` (relative paths
    resolve against the file's folder), and every issue; nothing is built unless none."""
    file = str(path)
    try:
        root = load_tree(path)
    except YamlProblem as problem:
        return None, [ConfigIssue(file, problem.line, problem.col, problem.message)]
    walker = reader(Path(path).parent)
    built = read(walker, root, file)
    issues = [ConfigIssue(file, *problem) for problem in sorted(walker.problems)]
    return (None if issues else built), issues


def load_config(path: str | Path) -> FleetConfig:
    """The fleet a file describes; raises InvalidConfigError (a ConfigError) listing issues."""
    fleet, issues = check_config(path)
    if fleet is None:
        raise InvalidConfigError(issues)
    return fleet


def _split(text: str) -> tuple[SplitResult, int | None]:
    """The URL's parts and port; ValueError for spaces, a bad port or a bad IPv6 host."""
    if any(char.isspace() for char in text):
        raise ValueError("it contains spaces")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"
        raise ValueError(str(exc).lower()) from None
    if port == 0:
        raise ValueError("port 0 is not a port")
    return parts, port


def _check_url(text: str) -> str:
    """The URL without trailing slashes; raises ValueError saying what is wrong with it."""
    parts, _ = _split(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("it must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("it names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in a URL: secrets only by reference (token_env, token_file)")
    return text.rstrip("/")


def _check_endpoint(text: str) -> str:
    """A gateway endpoint: tcp://HOST:PORT or unix:///absolute/path."""
    parts, port = _split(text)
    if parts.scheme == "unix":
        if parts.netloc or len(parts.path) < 2:
            raise ValueError("a unix endpoint needs an absolute path: unix:///run/haproxy.sock")
        return text
    if parts.scheme == "tcp":
        if not parts.hostname or port is None or parts.path or parts.query or parts.fragment:
            raise ValueError("expected tcp://HOST:PORT")
        return text
    raise ValueError("expected tcp://HOST:PORT or unix:///path")


def _seconds(value: float) -> str:
    return f"{value:g}s"


class FleetReader(NodeReader):
    """Walks a composed fleet.yaml, reporting its problems and building the FleetConfig.
    The agent's config reader builds on it for the checks both files share (names, engine
    kinds, durations, URLs, secrets by reference).

    The FleetConfig only counts when no problem was found; names and references are checked
    once everything is read, so the file's order of sections does not matter.
    """

    def __init__(self, config_dir: Path) -> None:
        super().__init__()
        self.config_dir = config_dir.absolute()  # token_file paths are relative to it
        self._declared: list[tuple[str, str, Node]] = []  # (kind, name, name node)
        self._references: list[tuple[str, str, str, Node, str | None]] = []
        self._sourced = False  # a source reads the fleet: nodes need no URL of their own
        self._discovers = False  # ... and may add nodes to the listed pools

    def unknown_key(self, key: str, key_node: Node, path: str, known: Collection[str]) -> None:
        if "token_env" in known and key in _LITERAL_SECRET_KEYS:
            message = "secrets only by reference: use token_env or token_file"
            self.report(key_node, f"{join_path(path, key)}: {message}")
        elif path or not key.startswith("x-"):  # top-level x- keys: a place for anchors
            super().unknown_key(key, key_node, path, known)

    # --- fleet, gateways, pools, nodes ----------------------------------------------------

    def read(self, root: Node | None, path: str) -> FleetConfig | None:
        if root is None or is_null(root):
            self.report_at(1, 1, "empty config: expected a mapping with 'pools'")
            return None
        entries = self.entries(root, "", _TOP_KEYS, "a mapping with 'pools'")
        if entries is None:
            return None
        refresh = self._refresh(self.given(entries, "refresh"), "refresh", Refresh())
        alerts = self._alerts(self.given(entries, "alerts"), "alerts", Alerts())
        gateways = [
            self._gateway(item, f"gateways[{index}]", refresh)
            for index, item in enumerate(self.items(entries, "", "gateways", "gateways") or [])
        ]
        source_node = self.given(entries, "source")
        source = self._source(source_node, "source")
        # a source given, even a broken one (already reported), may discover the pools
        self._discovers = source_node is not None and (source is None or source.discover)
        self._sourced = source_node is not None
        discovers = self._discovers
        pool_items = self.items(entries, "", "pools", "pools")
        if discovers and pool_items is None:
            pool_items = []  # every pool may come from the source
        elif pool_items == [] or (pool_items is None and self.given(entries, "pools") is None):
            where = entries["pools"][1] if "pools" in entries else root
            self.report(where, "no pools: a fleet needs at least one pool under 'pools'")
        pools, nodes = [], []
        for index, item in enumerate(pool_items or []):
            pool, pool_nodes = self._pool(item, f"pools[{index}]", refresh, alerts)
            pools.append(pool)
            nodes += pool_nodes
        commands = [
            self._operator_command(item, f"commands[{index}]")
            for index, item in enumerate(self.items(entries, "", "commands", "commands") or [])
        ]
        self._check_command_keys(commands)
        read_only = self.optional(entries, "", "read_only", self.flag)
        audit_log = self.optional(entries, "", "audit_log", self.text)
        theme = self.optional(entries, "", "theme", self.text)
        self._check_names()
        self._check_references()
        if self.problems:
            return None
        return FleetConfig(
            path=path,
            refresh=refresh,
            alerts=alerts,
            gateways=tuple(gateways),  # type: ignore[arg-type]  # no issue: none is None
            pools=tuple(pools),  # type: ignore[arg-type]
            nodes=tuple(nodes),  # type: ignore[arg-type]
            commands=tuple(commands),  # type: ignore[arg-type]
            read_only=bool(read_only),
            theme=theme,
            source=source,
            # relative to the config file, like every path a user writes there
            audit_log=None
            if audit_log is None
            else str(self.config_dir / Path(audit_log).expanduser()),
        )

    def _gateway(self, node: Node, path: str, fleet_refresh: Refresh) -> GatewayConfig | None:
        entries = self.entries(node, path, _GATEWAY_KEYS, "a gateway mapping")
        if entries is None:
            return None
        name = self._declare("gateway", entries, node, path)
        plugin = self.required(entries, node, path, "plugin", self.text)
        endpoints = [
            self._endpoint(item, f"{path}.endpoints[{index}]")
            for index, item in enumerate(
                self.required_items(entries, node, path, "endpoints", _ENDPOINTS_NEED)
            )
        ]
        refresh = self._refresh(self.given(entries, "refresh"), f"{path}.refresh", fleet_refresh)
        token = self._secret(entries, path)
        if name is None or plugin is None:
            return None
        return GatewayConfig(
            name=name,
            plugin=plugin,
            endpoints=tuple(endpoint for endpoint in endpoints if endpoint is not None),
            refresh=refresh,
            token=token,
            line=position(node)[0],
        )

    def _pool(
        self, node: Node, path: str, fleet_refresh: Refresh, fleet_alerts: Alerts
    ) -> tuple[PoolConfig | None, list[NodeConfig | None]]:
        entries = self.entries(node, path, _POOL_KEYS, "a pool mapping")
        if entries is None:
            return None, []
        name = self._declare("pool", entries, node, path)
        model = self.optional(entries, path, "model", self.text)
        gateway = self._reference("gateway", entries, path, name)
        standby = self._reference("standby", entries, path, name)
        backend = self.optional(entries, path, "backend", self.text)
        route = self._route(self.given(entries, "route"), f"{path}.route")
        has_gateway = self.given(entries, "gateway") is not None
        for key in ("backend", "route"):
            if self.given(entries, key) is not None and not has_gateway:
                self.report(entries[key][0], f"{path}.{key}: needs a 'gateway' in the pool")
        if has_gateway and self.given(entries, "backend") is None:
            self.report(node, f"{path}: 'backend' is required when 'gateway' is set")
        min_healthy = self.optional(entries, path, "min_healthy", self.count) or 0
        max_unavailable = self.optional(entries, path, "max_unavailable", self._positive) or 1
        capacity = self.optional(entries, path, "capacity", self._positive)
        alerts = self._alerts(self.given(entries, "alerts"), f"{path}.alerts", fleet_alerts)
        refresh = self._refresh(self.given(entries, "refresh"), f"{path}.refresh", fleet_refresh)
        if self._discovers:  # its nodes may all be discovered
            node_items = self.items(entries, path, "nodes", "nodes") or []
        else:
            node_items = self.required_items(entries, node, path, "nodes", "a pool needs a node")
        servers: dict[str, Node] = {}  # server name -> where it was first given, in this pool
        nodes = [
            self._node(
                item, f"{path}.nodes[{index}]", name, refresh, has_gateway, servers, capacity
            )
            for index, item in enumerate(node_items)
        ]
        if min_healthy > len(node_items) and not self._discovers:
            self.report(
                entries["min_healthy"][1],
                f"{path}.min_healthy: {min_healthy} but the pool has {len(node_items)} node(s)",
            )
        if name is None:
            return None, nodes
        pool = PoolConfig(
            name=name,
            model=model,
            gateway=gateway,
            backend=backend,
            route=route,
            standby=standby,
            min_healthy=min_healthy,
            nodes=tuple(each.name for each in nodes if each is not None),
            alerts=alerts,
            max_unavailable=max_unavailable,
            line=position(node)[0],
        )
        return pool, nodes

    def _node(
        self,
        node: Node,
        path: str,
        pool: str | None,
        pool_refresh: Refresh,
        has_gateway: bool,
        servers: dict[str, Node],
        pool_capacity: int | None,
    ) -> NodeConfig | None:
        entries = self.entries(node, path, _NODE_KEYS, "a node mapping")
        if entries is None:
            return None
        name = self._declare("node", entries, node, path)
        engine = self.optional(entries, path, "engine", self._engine) or "auto"
        url, metrics_url, agent, dcgm = (
            self.optional(entries, path, key, self._url)
            for key in ("url", "metrics_url", "agent", "dcgm")
        )
        if (
            self.given(entries, "url") is None
            and self.given(entries, "agent") is None
            and not self._sourced
        ):
            self.report(node, f"{path}: needs a 'url' (the engine) or an 'agent', or a 'source'")
        server = self.optional(entries, path, "server", self.text)
        if server is not None and not has_gateway:
            self.report(entries["server"][0], f"{path}.server: the pool has no 'gateway'")
        if has_gateway:
            server = server or name  # a backend's servers are usually named like the nodes
            where = self.given(entries, "server") or self.given(entries, "name")
            if server is not None and where is not None:
                self._claim_server(server, where, path, servers)
        refresh = self._refresh(self.given(entries, "refresh"), f"{path}.refresh", pool_refresh)
        token = self._secret(entries, path)
        capacity = self.optional(entries, path, "capacity", self._positive) or pool_capacity
        if name is None or pool is None:
            return None
        return NodeConfig(
            name=name,
            pool=pool,
            engine=engine,
            url=url,
            metrics_url=metrics_url,
            agent=agent,
            dcgm=dcgm,
            server=server,
            refresh=refresh,
            token=token,
            capacity=capacity,
            line=position(node)[0],
        )

    def _claim_server(self, server: str, where: Node, path: str, servers: dict[str, Node]) -> None:
        if server in servers:
            first_line = position(servers[server])[0]
            self.report(where, f"{path}.server: '{server}' already used at line {first_line}")
        else:
            servers[server] = where

    # --- the fleet source ------------------------------------------------------------------

    def _source(self, node: Node | None, path: str) -> SourceConfig | None:
        entries = None if node is None else self.entries(node, path, _SOURCE_KEYS, "a mapping")
        if node is None or entries is None:
            return None
        defaults = SourceConfig(plugin="", url="")
        plugin = self.required(entries, node, path, "plugin", self.text)
        url = self.required(entries, node, path, "url", self._url)
        refresh = self._refresh(self.given(entries, "refresh"), f"{path}.refresh", defaults.refresh)
        window = self.optional(entries, path, "window", self._period)
        labels = self._source_labels(self.given(entries, "labels"), f"{path}.labels")
        discover = self.optional(entries, path, "discover", self.flag)
        figures = self._source_figures(entries, path)
        templates = {
            key: self.optional(entries, path, key, self._template(_SOURCE_TEMPLATES[key]))
            for key in _SOURCE_TEMPLATES
        }
        gateway = self._reference("gateway", entries, path, None)
        token = self._secret(entries, path)
        if plugin is None or url is None:
            return None
        return SourceConfig(
            plugin=plugin,
            url=url,
            refresh=refresh,
            window=defaults.window if window is None else window,
            labels=labels,
            discover=defaults.discover if discover is None else discover,
            figures=defaults.figures if figures is None else figures,
            server=templates["server"] or defaults.server,
            agent=templates["agent"],
            gateway=gateway,
            backend=templates["backend"] or defaults.backend,
            token=token,
            line=position(node)[0],
        )

    def _source_labels(self, node: Node | None, path: str) -> SourceLabels:
        entries = None if node is None else self.entries(node, path, _SOURCE_LABEL_KEYS, "labels")
        if entries is None:
            return SourceLabels()
        names = {key: self.optional(entries, path, key, self._label) for key in entries}
        return replace(SourceLabels(), **{k: v for k, v in names.items() if v is not None})

    def _source_figures(self, entries: Entries, path: str) -> tuple[str, ...] | None:
        items = self.items(entries, path, "figures", "figure groups")
        if items is None:
            return None
        figures = []
        for index, item in enumerate(items):
            figure = self.text(item, f"{path}.figures[{index}]")
            if figure is not None and figure not in SOURCE_FIGURES:
                self.report(
                    item,
                    f"{path}.figures[{index}]: unknown figure group '{figure}'; one of "
                    + ", ".join(SOURCE_FIGURES),
                )
            elif figure is not None:
                figures.append(figure)
        return tuple(figures)

    def _label(self, node: Node, path: str) -> str | None:
        name = self.text(node, path)
        if name is not None and not _LABEL.fullmatch(name):
            self.report(node, f"{path}: '{name}' is not a Prometheus label name")
            return None
        return name

    def _template(self, allowed: tuple[str, ...]) -> Callable[[Node, str], str | None]:
        def read(node: Node, path: str) -> str | None:
            text = self.text(node, path)
            for placeholder in _PLACEHOLDER.findall(text or ""):
                if placeholder not in allowed:
                    self.report(
                        node,
                        f"{path}: unknown placeholder '{{{placeholder}}}'; one of "
                        + ", ".join("{" + each + "}" for each in allowed),
                    )
                    return None
            return text

        return read

    # --- operator commands -------------------------------------------------------------

    def _operator_command(self, node: Node, path: str) -> CommandConfig | None:
        entries = self.entries(node, path, _COMMAND_KEYS, "a command mapping")
        if entries is None:
            return None
        name = self.required(entries, node, path, "name", self._name)
        key = self.optional(entries, path, "key", self.text)
        scope = self.required(entries, node, path, "scope", self._scope)
        argv_items = self.required_items(entries, node, path, "argv", "the program and its args")
        argv = [self.text(item, f"{path}.argv[{index}]") for index, item in enumerate(argv_items)]
        if scope is not None:
            allowed = COMMAND_PLACEHOLDERS[scope]
            for index, (item, word) in enumerate(zip(argv_items, argv, strict=True)):
                for placeholder in _PLACEHOLDER.findall(word or ""):
                    if placeholder not in allowed:
                        self.report(
                            item,
                            f"{path}.argv[{index}]: unknown placeholder '{{{placeholder}}}' for "
                            f"scope {scope}; one of "
                            + ", ".join("{" + each + "}" for each in allowed),
                        )
        confirm = self.optional(entries, path, "confirm", self.flag)
        dangerous = self.optional(entries, path, "dangerous", self.flag)
        timeout = self.optional(entries, path, "timeout", self._period)
        if name is None or scope is None or None in argv or not argv:
            return None
        return CommandConfig(
            name=name,
            key=key,
            scope=scope,
            argv=tuple(word for word in argv if word is not None),
            confirm=True if confirm is None else confirm,
            dangerous=bool(dangerous),
            timeout=30.0 if timeout is None else timeout,
            line=position(node)[0],
        )

    def _check_command_keys(self, commands: list[CommandConfig | None]) -> None:
        first: dict[str, int] = {}
        for command in commands:
            if command is None or command.key is None:
                continue
            where = f"commands: '{command.name}' key '{command.key}'"
            if command.key in RESERVED_KEYS:
                self.report_at(command.line, 1, f"{where} is one of the console's own keys")
            elif command.key in first:
                self.report_at(
                    command.line, 1, f"{where} already used at line {first[command.key]}"
                )
            else:
                first[command.key] = command.line

    # --- names and references, checked once everything is read ----------------------------

    def _declare(self, kind: str, entries: Entries, node: Node, path: str) -> str | None:
        name = self.required(entries, node, path, "name", self._name)
        if name is not None:
            self._declared.append((kind, name, entries["name"][1]))
        return name

    def _reference(self, kind: str, entries: Entries, path: str, owner: str | None) -> str | None:
        target = self.optional(entries, path, kind, self.text)
        if target is not None:
            self._references.append((kind, target, path, entries[kind][1], owner))
        return target

    def _check_names(self) -> None:
        first_use: dict[str, int] = {}
        for _, name, node in sorted(self._declared, key=lambda each: position(each[2])):
            if name in first_use:
                self.report(node, f"duplicate name '{name}' (first used at line {first_use[name]})")
            else:
                first_use[name] = position(node)[0]

    def _check_references(self) -> None:
        names = {
            kind: {name for each, name, _ in self._declared if each == kind}
            for kind in ("gateway", "pool")
        }
        for kind, target, path, node, owner in self._references:
            wanted = "gateway" if kind == "gateway" else "pool"  # a standby is a pool
            if kind == "standby" and target == owner:
                self.report(node, f"{path}.standby: a pool cannot be its own standby")
            elif target not in names[wanted]:
                hint = did_you_mean(target, names[wanted] - {owner or ""})
                self.report(node, f"{path}.{kind}: no {wanted} named '{target}'{hint}")

    # --- overlays: refresh, alerts; route and secret references ---------------------------

    def _refresh(self, node: Node | None, path: str, base: Refresh) -> Refresh:
        entries = None if node is None else self.entries(node, path, _REFRESH_KEYS, _REFRESH_WHAT)
        if entries is None:
            return base
        interval = self.optional(entries, path, "interval", self._period)
        timeout = self.optional(entries, path, "timeout", self._period)
        resolved = Refresh(
            interval=base.interval if interval is None else interval,
            timeout=base.timeout if timeout is None else timeout,
        )
        if resolved.timeout > resolved.interval:
            where = entries["timeout" if timeout is not None else "interval"][1]
            self.report(
                where,
                f"{path}: timeout {_seconds(resolved.timeout)} is longer than interval "
                f"{_seconds(resolved.interval)}",
            )
            return base
        return resolved

    def _alerts(self, node: Node | None, path: str, base: Alerts) -> Alerts:
        entries = None if node is None else self.entries(node, path, _ALERT_KEYS, _ALERTS_WHAT)
        if entries is None:
            return base
        changes: dict[str, Any] = {}  # Threshold for the figures, float for stale_after
        for key, (_, value) in entries.items():
            if is_null(value):
                continue
            if key == "stale_after":
                stale_after = self.number(value, f"{path}.{key}")
                changes[key] = self.within(
                    value, f"{path}.{key}", stale_after, "more than 0", lambda v: v > 0
                )
            else:
                changes[key] = self._threshold(value, f"{path}.{key}", getattr(base, key), key)
        return replace(base, **{key: value for key, value in changes.items() if value is not None})

    def _threshold(self, node: Node, path: str, base: Threshold, alert: str) -> Threshold:
        """A {warn, crit} overlay: a level left out keeps `base`'s, a null one switches off."""
        entries = self.entries(node, path, _THRESHOLD_KEYS, "a mapping like {warn: 1, crit: 2}")
        if entries is None:
            return base
        levels = {"warn": base.warn, "crit": base.crit}
        for level, (_, value) in entries.items():
            limit = None if is_null(value) else self._limit(value, f"{path}.{level}", alert)
            if limit is not None or is_null(value):
                levels[level] = limit
        warn, crit = levels["warn"], levels["crit"]
        if warn is not None and crit is not None and warn > crit:
            self.report(node, f"{path}: warn {warn:g} is above crit {crit:g}")
        return Threshold(warn=warn, crit=crit)

    def _limit(self, node: Node, path: str, alert: str) -> float | None:
        kind = _THRESHOLD_KINDS[alert]
        if kind == "duration":
            return self._duration(node, path)
        value = self.number(node, path)
        if kind == "fraction":
            return self.within(node, path, value, "a fraction from 0 to 1", lambda v: 0 <= v <= 1)
        if kind == "count":
            return self.within(node, path, value, "0 or more", lambda v: v >= 0)
        return value

    def _route(self, node: Node | None, path: str) -> Route | None:
        if node is None:
            return None
        entries = self.entries(node, path, _ROUTE_KEYS, _ROUTE_WHAT)
        if entries is None:
            return None
        map_file = self.required(entries, node, path, "map", self.text)
        key = self.required(entries, node, path, "key", self.text)
        return None if map_file is None or key is None else Route(map=map_file, key=key)

    def _secret(self, entries: Entries, path: str) -> SecretRef | None:
        env = self.optional(entries, path, "token_env", self._env_name)
        file = self.optional(entries, path, "token_file", self.text)
        if env is not None and file is not None:
            self.report(entries["token_file"][0], f"{path}: use token_env or token_file, not both")
            return None
        if file is not None:  # relative to the config file, like every path a user writes there
            return SecretRef(file=str(self.config_dir / Path(file).expanduser()))
        return None if env is None else SecretRef(env=env)

    # --- scalar values ----------------------------------------------------------------------

    def _name(self, node: Node, path: str) -> str | None:
        name = self.text(node, path)
        if name is not None and not _NAME.fullmatch(name):
            self.report(
                node,
                f"{path}: bad name '{name}' (letters, digits, '.', '_', '-'; "
                "starting with a letter or digit)",
            )
            return None
        return name

    def _engine(self, node: Node, path: str) -> str | None:
        engine = self.text(node, path)
        if engine is not None and engine not in ENGINE_KINDS:
            self.report(
                node,
                f"{path}: unknown engine '{engine}'{did_you_mean(engine, ENGINE_KINDS)}"
                f"; one of {', '.join(ENGINE_KINDS)}",
            )
            return None
        return engine

    def _scope(self, node: Node, path: str) -> str | None:
        scope = self.text(node, path)
        if scope is not None and scope not in COMMAND_SCOPES:
            self.report(
                node, f"{path}: unknown scope '{scope}'; one of {', '.join(COMMAND_SCOPES)}"
            )
            return None
        return scope

    def _positive(self, node: Node, path: str) -> int | None:
        value = self.count(node, path)
        if value == 0:
            self.report(node, f"{path}: must be at least 1")
            return None
        return value

    def _env_name(self, node: Node, path: str) -> str | None:
        name = self.text(node, path)
        if name is not None and not _ENV_NAME.fullmatch(name):
            self.report(node, f"{path}: '{name}' is not an environment variable name")
            return None
        return name

    def _url(self, node: Node, path: str) -> str | None:
        return self.checked(node, path, "URL", _check_url)

    def _endpoint(self, node: Node, path: str) -> str | None:
        return self.checked(node, path, "endpoint", _check_endpoint)

    def _duration(self, node: Node, path: str) -> float | None:
        value = self.scalar(node, path, "a duration (e.g. 500ms, 2s, 1m)")
        if value is None:
            return None
        if isinstance(value, bool):
            self.report(node, f"{path}: expected a duration (e.g. 500ms, 2s), got {describe(node)}")
            return None
        try:
            return parse_duration(value)  # type: ignore[arg-type]  # only str, int, float here
        except ValueError as exc:
            self.report(node, f"{path}: {exc}")
            return None

    def _period(self, node: Node, path: str) -> float | None:
        seconds = self._duration(node, path)
        if seconds == 0:
            self.report(node, f"{path}: must be longer than 0s")
            return None
        return seconds
