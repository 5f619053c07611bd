"""Colour themes as data files: Textual's `Theme` fields plus a Rich style for each status word.

Themes are YAML files, one theme each, named after it (`fleetdeck-dark.yaml` holds
`name: fleetdeck-dark`), read from the built-in `themes/` folder and then the user's
`$XDG_CONFIG_HOME/fleetdeck/themes`, so a user file overrides a built-in theme of its name. A
broken file is reported as `FILE:LINE:COL: message` and skipped, never raised: the console
starts with the themes that load. `themes/fleetdeck-dark.yaml` documents each key.

Which theme a terminal gets without `--theme` follows what Textual will do with the screen:
with NO_COLOR set it greys every colour, so status must be carried by symbols and
bold/reverse/dim (the monochrome theme); on a 16-colour terminal Rich rounds every colour to
the nearest of 16 fixed shades, so the ANSI theme leaves the shades to the terminal's scheme.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from rich.errors import StyleSyntaxError
from rich.markup import render
from rich.style import Style
from textual.color import Color, ColorParseError
from textual.css.stylesheet import Stylesheet, StylesheetParseError
from textual.css.tokenizer import TokenError
from textual.theme import Theme
from yaml.nodes import Node

from console._yamlnodes import Entries, NodeReader, did_you_mean, is_null
from console.builtin import resource_dir
from console.config import ConfigIssue, check_file
from console.errors import ConfigError
from console.model import Severity

DEFAULT_THEME = "fleetdeck-dark"
MONO_THEME = "fleetdeck-mono"
ANSI_THEME = "fleetdeck-16"
# The status words a theme styles: the four severities, then markers (the TUI's palette, which
# every cell formatter in console.tui.rows takes).
STATUS_KEYS = ("ok", "warn", "unknown", "crit", "ack", "stale", "down", "drain")

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "success",
    "warning",
    "error",
)
_REQUIRED_KEYS = ("name", "dark", "primary", "foreground", "background", "status")
_TOP_KEYS = (
    "name",
    "dark",
    "ansi",
    *COLOUR_KEYS,
    "luminosity_spread",
    "text_alpha",
    "variables",
    "status",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # Textual makes a CSS class of it
_COLOUR_FORMS = "#RGB, #RRGGBB, rgb(), hsl(), a colour name or ansi_NAME"
# what Rich (and so Textual) reads from the environment to pick its colour system
_RICH_256_TERMS = ("256color", "kitty")
_TRUECOLOR_TERMS = ("truecolor", "24bit")
_DUMB_TERMS = ("dumb", "unknown")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadedTheme:
    """One theme file: the Textual theme to register and the Rich style of each status word."""

    name: str
    textual: Theme
    palette: Mapping[str, str]  # STATUS_KEYS -> Rich style string
    path: Path

    def severity_style(self, severity: Severity) -> str:
        return self.palette[severity.label]


@dataclass(frozen=True, slots=True)
class ThemeSet:
    """The themes that loaded, by name, and one issue for each problem in the files that did
    not (`str(issue)` is `FILE:LINE:COL: message`)."""

    themes: Mapping[str, LoadedTheme]
    problems: tuple[ConfigIssue, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.themes))


def theme_folders(environ: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """The built-in theme folder, then the user's ($XDG_CONFIG_HOME/fleetdeck/themes)."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config_home):  # the XDG spec ignores relative paths
        config_home = str(Path.home() / ".config")
    return resource_dir("themes"), Path(config_home) / "fleetdeck" / "themes"


def load_themes(folders: Sequence[Path]) -> ThemeSet:
    """Every `*.yaml` theme in `folders`, in order: a later file of the same name wins. A folder
    that does not exist is skipped; one that cannot be listed is a problem."""
    themes: dict[str, LoadedTheme] = {}
    problems: list[ConfigIssue] = []
    for folder in folders:
        for path in _theme_files(folder, problems):
            theme, issues = check_file(path, lambda _folder: ThemeReader(), ThemeReader.read)
            problems += issues
            if theme is not None:
                themes[theme.name] = theme
    return ThemeSet(MappingProxyType(themes), tuple(problems))


def _theme_files(folder: Path, problems: list[ConfigIssue]) -> list[Path]:
    try:
        with os.scandir(folder) as listing:
            names = [
                entry.name
                for entry in listing
                # no dot files (editor backups); no FIFOs or folders, which would not read
                if entry.name.endswith(".yaml")
                and not entry.name.startswith(".")
                and entry.is_file()
            ]
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append(ConfigIssue(str(folder), 1, 1, f"cannot list: {exc.strerror or exc}"))
        return []
    return [folder / name for name in sorted(names)]


class ThemeReader(NodeReader):
    """Walks one composed theme file, reporting every problem at its line and column."""

    def read(self, root: Node | None, file: str) -> LoadedTheme | None:
        if root is None or is_null(root):
            self.report_at(1, 1, "empty theme file: expected a mapping with 'name', 'primary', ...")
            return None
        entries = self.entries(root, "", _TOP_KEYS, "a theme mapping")
        if entries is None:
            return None
        stem = Path(file).stem
        for key in _REQUIRED_KEYS:
            if key not in entries:
                self.report(root, f"missing '{key}'")
            elif is_null(entries[key][1]):
                self.report(entries[key][1], f"{key}: no value")
        name = self._value(entries, "name", self._name)
        if name is not None and name != stem:
            self.report(
                entries["name"][1],
                f"name: '{name}' does not match the file name {stem}.yaml (a theme file is "
                "named after its theme)",
            )
        dark = self._value(entries, "dark", self.flag)
        ansi = self._value(entries, "ansi", self.flag)
        colours = {key: self._value(entries, key, self._colour) for key in COLOUR_KEYS}
        spread = self._value(entries, "luminosity_spread", self._fraction)
        alpha = self._value(entries, "text_alpha", self._fraction)
        variables = self._value(entries, "variables", self._variables)
        palette = self._value(entries, "status", self._palette)
        if self.problems or name is None or dark is None or palette is None:
            return None
        primary = colours.pop("primary")
        assert primary is not None  # required: its absence is a problem above
        base = Theme(name, primary, dark=dark, ansi=bool(ansi), variables=variables or {})
        given: dict[str, Any] = {**colours, "luminosity_spread": spread, "text_alpha": alpha}
        theme = replace(base, **{key: value for key, value in given.items() if value is not None})
        return LoadedTheme(name, theme, palette, Path(file))

    def _value(self, entries: Entries, key: str, read: Callable[[Node, str], T | None]) -> T | None:
        value = self.given(entries, key)
        return None if value is None else read(value, key)

    def _name(self, node: Node, path: str) -> str | None:
        name = self.text(node, path)
        if name is not None and not _NAME.fullmatch(name):
            self.report(node, f"{path}: bad theme name '{name}': letters, digits, '-' and '_'")
            return None
        return name

    def _colour(self, node: Node, path: str) -> str | None:
        return self.checked(node, path, "colour", _check_colour)

    def _fraction(self, node: Node, path: str) -> float | None:
        return self.within(
            node, path, self.number(node, path), "from 0 to 1", lambda v: 0 <= v <= 1
        )

    def _variables(self, node: Node, path: str) -> dict[str, str] | None:
        entries = self.entries(node, path, _textual_variables(), "a mapping of Textual variables")
        if entries is None:
            return None
        found = {
            name: self.checked(value, f"{path}.{name}", "value", _variable_check(name))
            for name, (_, value) in entries.items()
        }
        return {name: value for name, value in found.items() if value is not None}

    def _palette(self, node: Node, path: str) -> Mapping[str, str] | None:
        entries = self.entries(node, path, STATUS_KEYS, "a mapping of status styles")
        if entries is None:
            return None
        palette = {}
        for key in STATUS_KEYS:
            if key not in entries:
                self.report(node, f"{path}: missing '{key}'")
                continue
            style = self.checked(entries[key][1], f"{path}.{key}", "Rich style", _check_style)
            if style is not None:
                palette[key] = style
        return MappingProxyType(palette) if len(palette) == len(STATUS_KEYS) else None


def _check_colour(text: str) -> str:
    try:
        Color.parse(text)
    except ColorParseError as exc:
        hint = f" (did you mean '{exc.suggested_color}'?)" if exc.suggested_color else ""
        raise ValueError(f"Textual reads {_COLOUR_FORMS}{hint}") from None
    return text


def _check_style(text: str) -> str:
    try:
        Style.parse(text)
    except StyleSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return text


@cache
def _textual_variables() -> frozenset[str]:
    """The CSS variables a Textual theme sets (ANSI themes set a slightly different list)."""
    return frozenset(
        name
        for ansi in (False, True)
        for name in Theme("probe", "#000000", ansi=ansi).to_color_system().generate()
    )


def _variable_check(name: str) -> Callable[[str], str]:
    """Checks a variable's value with Textual's own CSS parser, in the property Textual's
    widgets use it for: text styles, link styles, and colours for all the others."""
    if name.endswith("text-style"):
        prop = "text-style"
    elif name.startswith("link-style"):
        prop = name
    else:
        prop = "color"

    def check(value: str) -> str:
        sheet = Stylesheet(variables={name: value})
        sheet.add_source(f"Screen {{ {prop}: ${name}; }}", read_from=("theme", name))
        try:
            sheet.parse()
        except TokenError as exc:
            # keep Textual's first clause; its hints are about CSS files, not themes
            raise ValueError(str(exc).split(";")[0].rstrip(".")) from None
        except StylesheetParseError as exc:
            message = next(m for rule in exc.errors.rules for _, m in rule.errors)
            summary = getattr(message, "summary", str(message))
            raise ValueError(render(summary).plain) from None
        return value

    return check


def auto_theme_name(environ: Mapping[str, str]) -> str:
    """The theme for a terminal, from the variables Textual and Rich read: NO_COLOR (set at
    all: Textual greys the screen even when it is empty) or a dumb terminal -> monochrome; a
    16-colour terminal -> the ANSI theme; otherwise the default."""
    term = environ.get("TERM", "").strip().lower()
    if "NO_COLOR" in environ or term in _DUMB_TERMS:
        return MONO_THEME
    return ANSI_THEME if _sixteen_colours(environ, term) else DEFAULT_THEME


def _sixteen_colours(environ: Mapping[str, str], term: str) -> bool:
    """Whether Rich will render only the 16 standard colours (Textual's TEXTUAL_COLOR_SYSTEM
    first, else Rich's own detection: COLORTERM, then TERM's suffix)."""
    forced = environ.get("TEXTUAL_COLOR_SYSTEM", "auto").strip().lower()
    if forced != "auto":
        return forced in ("standard", "windows")
    if environ.get("COLORTERM", "").strip().lower() in _TRUECOLOR_TERMS:
        return False
    return term.rpartition("-")[2] not in _RICH_256_TERMS


def choose_theme(
    themes: ThemeSet, requested: str | None = None, environ: Mapping[str, str] | None = None
) -> LoadedTheme:
    """The theme `requested` by name (--theme, config), else the one for this terminal.
    Raises ConfigError naming the known themes when that theme did not load."""
    env = os.environ if environ is None else environ
    name = auto_theme_name(env) if requested is None else requested
    theme = themes.themes.get(name)
    if theme is None:
        raise ConfigError(
            f"unknown theme '{name}'{did_you_mean(name, themes.names)}: "
            f"known themes are {', '.join(themes.names) or 'none'}",
            title="theme",
        )
    return theme


def app_ansi_color(environ: Mapping[str, str] | None = None) -> bool | None:
    """The `ansi_color` to construct the Textual App with. Under NO_COLOR, True: Textual then
    drops colours to the terminal's own (its NoColor filter, bold and reverse kept); otherwise
    it greys them, and an ANSI theme's colours turn black on black. None elsewhere: each theme
    says whether its colours are native ANSI."""
    return True if "NO_COLOR" in (os.environ if environ is None else environ) else None
