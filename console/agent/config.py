"""The node agent's configuration (`agent.yaml`): defaults in code, the file overlaid.

The file is composed into marked nodes (`console._yamlnodes`) and walked here, so every issue
names its file, line and column, and every issue is reported, not the first. Paths written in
the file (token, TLS, history, model dir) are relative to the file. `examples/agent.reference.yaml`
documents each key; `fleetdeck agent` overlays its command-line flags on the result.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from yaml.nodes import Node

from console._yamlnodes import Entries, Read, T
from console.config import ConfigIssue, FleetReader, InvalidConfigError, check_file
from console.fleet import SecretRef

__all__ = [
    "AgentConfig",
    "DeployConfig",
    "EngineConfig",
    "HookConfig",
    "Listen",
    "TlsConfig",
    "check_agent_config",
    "default_agent_config",
    "load_agent_config",
    "parse_listen",
]

DEFAULT_PORT = 9401
DEFAULT_INTERVAL_S = 1.0
DEFAULT_DEPLOY_TIMEOUT_S = 600.0  # a real engine restart takes minutes
DEFAULT_HEALTH_TIMEOUT_S = 300.0
DEFAULT_HOOK_TIMEOUT_S = 30.0

_TOP_KEYS = (
    "node",
    "listen",
    "token_file",
    "token_env",
    "protect_reads",
    "tls",
    "interval",
    "engine",
    "model_dir",
    "deploy",
    "hooks",
)
_TLS_KEYS = ("cert", "key")
_ENGINE_KEYS = ("port", "process_name", "kind", "metrics_path", "health_path")
_DEPLOY_KEYS = ("revision_file", "current", "history_file", "command", "timeout", "health_timeout")
_HOOK_KEYS = ("command", "timeout")
_EXAMPLE_COMMANDS = {
    "rev": "[systemctl, restart, 'vllm@{rev}']",
    "reason": "[engine-drain, '--reason={reason}']",
}
_HOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # it appears in the URL path


class Listen(NamedTuple):
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


DEFAULT_LISTEN = Listen("127.0.0.1", DEFAULT_PORT)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine on this node: where the agent scrapes it and finds its process."""

    port: int | None = None  # on 127.0.0.1; None: the agent reads no engine figures
    process_name: str | None = None
    kind: str = "auto"  # one of console.fleet.ENGINE_KINDS
    metrics_path: str = "/metrics"
    health_path: str = "/health"

    @property
    def metrics_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}{self.metrics_path}"

    @property
    def health_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}{self.health_path}"


@dataclass(frozen=True, slots=True)
class DeployConfig:
    """How the agent deploys a revision: an argv template with `{rev}`, run without a shell."""

    history_file: str
    command: tuple[str, ...]
    current: str | None  # the revision deployed before the history file has any entry
    timeout: float  # seconds the deploy command may run
    health_url: str | None  # the engine's health endpoint, polled after a deploy
    health_timeout: float  # seconds to wait for the engine to answer healthy


@dataclass(frozen=True, slots=True)
class HookConfig:
    """An operator hook (`stop_accepting`, `resume`): an argv template with `{reason}`."""

    name: str
    command: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: str | None  # the file it came from; None for the defaults
    node: str
    listen: Listen = DEFAULT_LISTEN
    token: SecretRef | None = None
    protect_reads: bool = False  # GETs need the token too (except /healthz)
    tls: TlsConfig | None = None
    interval: float = DEFAULT_INTERVAL_S  # telemetry is read at most once per interval
    engine: EngineConfig = EngineConfig()
    model_dir: str | None = None
    deploy: DeployConfig | None = None
    hooks: tuple[HookConfig, ...] = ()


def parse_listen(text: str) -> Listen:
    """`HOST:PORT` or `[IPV6]:PORT`; raises ValueError saying what is wrong."""
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not host:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9401")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: [::1]:9401")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"'{port_text}' is not a port (0-65535; 0 picks a free one)")
    return Listen(host, int(port_text))


def default_agent_config() -> AgentConfig:
    return AgentConfig(path=None, node=socket.gethostname())


def check_agent_config(path: str | Path) -> tuple[AgentConfig | None, list[ConfigIssue]]:
    """The config a file describes and every issue in it (None unless there is none)."""
    return check_file(path, _AgentReader, _AgentReader.read_agent)


def load_agent_config(path: str | Path) -> AgentConfig:
    """The config a file describes; raises InvalidConfigError (a ConfigError) listing issues."""
    config, issues = check_agent_config(path)
    if config is None:
        raise InvalidConfigError(issues)
    return config


def _template_problem(word: str, placeholder: str) -> str | None:
    """What is wrong with one argv word as a template whose only field is `placeholder`."""
    try:
        fields = [
            (field, spec, conversion)
            for _, field, spec, conversion in string.Formatter().parse(word)
            if field is not None
        ]
    except ValueError as exc:  # a lone brace
        return f"{exc} (write a literal brace as {{{{ or }}}})"
    for field, spec, conversion in fields:
        if (field, spec, conversion) != (placeholder, "", None):
            return f"unknown placeholder '{{{field}}}': only {{{placeholder}}}"
    return None


class _AnyKey(Collection[str]):
    """Every key is known: the hooks section's keys are the hooks' names."""

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class _AgentReader(FleetReader):
    """Walks a composed agent.yaml, reporting its problems and building the AgentConfig.

    It shares the fleet reader's value checks (names, engine kinds, durations, environment
    variable names, secrets only by reference, top-level `x-` keys for anchors).
    """

    def read_agent(self, root: Node | None, file: str) -> AgentConfig | None:
        defaults = default_agent_config()
        if root is None:  # an empty file: every default
            return AgentConfig(path=file, node=defaults.node)
        entries = self.entries(root, "", _TOP_KEYS, "a mapping of agent settings")
        if entries is None:
            return None
        engine = self._engine_section(self.given(entries, "engine"))
        return AgentConfig(
            path=file,
            node=self._top(entries, "node", self._name) or defaults.node,
            listen=self._top(entries, "listen", self._listen) or defaults.listen,
            token=self._token(entries),
            protect_reads=bool(self._top(entries, "protect_reads", self.flag)),
            tls=self._tls(self.given(entries, "tls")),
            interval=self._top(entries, "interval", self._period) or defaults.interval,
            engine=engine,
            model_dir=self._top(entries, "model_dir", self._path),
            deploy=self._deploy(self.given(entries, "deploy"), engine),
            hooks=self._hooks(self.given(entries, "hooks")),
        )

    def _top(self, entries: Entries, key: str, read: Read[T]) -> T | None:
        """A top-level key's value (its path is the bare key)."""
        value = self.given(entries, key)
        return None if value is None else read(value, key)

    # --- sections ---------------------------------------------------------------------------

    def _token(self, entries: Entries) -> SecretRef | None:
        env = self._top(entries, "token_env", self._env_name)
        file = self._top(entries, "token_file", self._path)
        if env is not None and file is not None:
            self.report(entries["token_file"][0], "use token_env or token_file, not both")
            return None
        if file is not None:
            return SecretRef(file=file)
        return None if env is None else SecretRef(env=env)

    def _tls(self, node: Node | None) -> TlsConfig | None:
        entries = None if node is None else self.entries(node, "tls", _TLS_KEYS, "{cert, key}")
        if node is None or entries is None:
            return None
        cert = self.required(entries, node, "tls", "cert", self._path)
        key = self.required(entries, node, "tls", "key", self._path)
        return None if cert is None or key is None else TlsConfig(cert=cert, key=key)

    def _engine_section(self, node: Node | None) -> EngineConfig:
        entries = None if node is None else self.entries(node, "engine", _ENGINE_KEYS, "a mapping")
        if entries is None:
            return EngineConfig()
        defaults = EngineConfig()
        return EngineConfig(
            port=self.optional(entries, "engine", "port", self._port),
            process_name=self.optional(entries, "engine", "process_name", self.text),
            kind=self.optional(entries, "engine", "kind", self._engine) or defaults.kind,
            metrics_path=self.optional(entries, "engine", "metrics_path", self._url_path)
            or defaults.metrics_path,
            health_path=self.optional(entries, "engine", "health_path", self._url_path)
            or defaults.health_path,
        )

    def _deploy(self, node: Node | None, engine: EngineConfig) -> DeployConfig | None:
        what = "a mapping with history_file and command"
        entries = None if node is None else self.entries(node, "deploy", _DEPLOY_KEYS, what)
        if node is None or entries is None:
            return None
        history_file = self.required(entries, node, "deploy", "history_file", self._path)
        command = self._command(entries, node, "deploy", "rev")
        current = self.optional(entries, "deploy", "current", self.text)
        revision_file = self.optional(entries, "deploy", "revision_file", self._path)
        if current is not None and revision_file is not None:
            self.report(
                entries["revision_file"][0], "deploy: use current or revision_file, not both"
            )
        elif revision_file is not None:
            current = self._read_revision(entries["revision_file"][1], revision_file)
        timeout = self.optional(entries, "deploy", "timeout", self._period)
        health_timeout = self.optional(entries, "deploy", "health_timeout", self._period)
        if history_file is None or command is None:
            return None
        return DeployConfig(
            history_file=history_file,
            command=command,
            current=current,
            timeout=timeout or DEFAULT_DEPLOY_TIMEOUT_S,
            health_url=engine.health_url,
            health_timeout=health_timeout or DEFAULT_HEALTH_TIMEOUT_S,
        )

    def _hooks(self, node: Node | None) -> tuple[HookConfig, ...]:
        what = "a mapping of hook names to {command, timeout}"
        entries = None if node is None else self.entries(node, "hooks", _AnyKey(), what)
        hooks = [self._hook(name, *pair) for name, pair in (entries or {}).items()]
        return tuple(hook for hook in hooks if hook is not None)

    def _hook(self, name: str, key_node: Node, node: Node) -> HookConfig | None:
        path = f"hooks.{name}"
        good_name = _HOOK_NAME.fullmatch(name) is not None
        if not good_name:
            self.report(key_node, f"{path}: a hook name is letters, digits, '_' and '-'")
        entries = self.entries(node, path, _HOOK_KEYS, "a mapping with 'command'")
        if entries is None:
            return None
        command = self._command(entries, node, path, "reason")
        timeout = self.optional(entries, path, "timeout", self._period)
        if command is None or not good_name:
            return None
        return HookConfig(name=name, command=command, timeout=timeout or DEFAULT_HOOK_TIMEOUT_S)

    # --- values -----------------------------------------------------------------------------

    def _command(
        self, entries: Entries, node: Node, path: str, placeholder: str
    ) -> tuple[str, ...] | None:
        """An argv template: a non-empty list of words whose only `{...}` is `placeholder`."""
        need = f"an argv list, e.g. {_EXAMPLE_COMMANDS[placeholder]}"
        items = self.required_items(entries, node, path, "command", need)
        words = []
        for index, item in enumerate(items):
            where = f"{path}.command[{index}]"
            word = self.text(item, where)
            problem = None if word is None else _template_problem(word, placeholder)
            if problem is not None:
                self.report(item, f"{where}: {problem}")
            words.append(None if problem else word)
        if not items or None in words:
            return None
        argv = tuple(word for word in words if word is not None)
        if placeholder == "rev" and not any("{rev}" in word for word in argv):
            self.report(entries["command"][1], f"{path}.command: no {{rev}}: what would it deploy?")
            return None
        return argv

    def _read_revision(self, node: Node, file: str) -> str | None:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            self.report(node, f"deploy.revision_file: cannot read {file}: {reason}")
            return None
        return text or None

    def _listen(self, node: Node, path: str) -> Listen | None:
        text = self.text(node, path)
        if text is None:
            return None
        try:
            return parse_listen(text)
        except ValueError as exc:
            self.report(node, f"{path}: bad address '{text}': {exc}")
            return None

    def _port(self, node: Node, path: str) -> int | None:
        port = self.count(node, path)
        if port is not None and not 1 <= port <= 65535:
            self.report(node, f"{path}: {port} is not a port (1-65535)")
            return None
        return port

    def _url_path(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is not None and (not text.startswith("/") or any(c.isspace() for c in text)):
            self.report(node, f"{path}: expected a URL path like /metrics, got '{text}'")
            return None
        return text

    def _path(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        return None if text is None else str(self.config_dir / Path(text).expanduser())
