"""Themes as data files: the shipped ones load and work in Textual, each keeps its promise
(colour-blind safe, no hue, 16 ANSI colours, readable contrast), broken files are reported at
their line and skipped, a user file overrides a built-in, and a terminal gets the right one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.color import Color as RichColor
from rich.color import ColorType
from rich.console import Console as RichConsole
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.color import Color, ColorParseError
from textual.widgets import DataTable

from console.builtin import resource_dir
from console.errors import ConfigError
from console.model import Severity
from console.tui.themes import (
    ANSI_THEME,
    COLOUR_KEYS,
    DEFAULT_THEME,
    MONO_THEME,
    STATUS_KEYS,
    LoadedTheme,
    ThemeSet,
    app_ansi_color,
    auto_theme_name,
    choose_theme,
    load_themes,
    theme_folders,
)

SHIPPED = {
    "fleetdeck-dark",
    "fleetdeck-light",
    "fleetdeck-high-contrast",
    "fleetdeck-colorblind",
    "fleetdeck-mono",
    "fleetdeck-16",
}
GOOD = """\
name: {name}
dark: true
primary: "#5fafff"
foreground: "#d0d0d0"
background: "#121212"
status:
  ok: green
  warn: yellow
  unknown: magenta
  crit: bold red
  ack: dim
  stale: magenta
  down: bold red
  drain: cyan
"""


@pytest.fixture(scope="module")
def shipped() -> ThemeSet:
    return load_themes([resource_dir("themes")])


# --- helpers ---------------------------------------------------------------------------------


def style_colours(style: str) -> list[RichColor]:
    parsed = Style.parse(style)
    return [colour for colour in (parsed.color, parsed.bgcolor) if colour is not None]


def rgb(colour: RichColor) -> tuple[int, int, int]:
    red, green, blue = colour.get_truecolor()
    return red, green, blue


def palette_rgb(theme: LoadedTheme, key: str) -> tuple[int, int, int]:
    colour = Style.parse(theme.palette[key]).color
    assert colour is not None, f"{theme.name} {key} has no colour"
    return rgb(colour)


def hue(colour: tuple[int, int, int]) -> float:
    return Color(*colour).hsl.h * 360


def css_colours(theme: LoadedTheme) -> dict[str, Color]:
    """Every colour Textual's CSS gets from the theme: its fields, the variables it derives
    from them and the theme's own variables (text styles and `auto` are not colours)."""
    generated = theme.textual.to_color_system().generate() | theme.textual.variables
    values = {f"${name}": value for name, value in generated.items()}
    values |= {f: v for f in COLOUR_KEYS if (v := getattr(theme.textual, f)) is not None}
    colours = {}
    for name, value in values.items():
        try:
            colours[name] = Color.parse(value.split()[0])
        except ColorParseError:
            continue
    return colours


def linear(channel: int) -> float:
    value = channel / 255
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def luminance(colour: tuple[int, int, int]) -> float:
    red, green, blue = (linear(c) for c in colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: tuple[int, int, int], other: tuple[int, int, int]) -> float:
    """WCAG contrast ratio, 1 to 21."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# Machado et al. (2009), full severity, applied to linear RGB
PROTANOPIA = (
    (0.152286, 1.052583, -0.204868),
    (0.114503, 0.786281, 0.099216),
    (-0.003882, -0.048116, 1.051998),
)
DEUTERANOPIA = (
    (0.367322, 0.860646, -0.227968),
    (0.280085, 0.672501, 0.047413),
    (-0.011820, 0.042940, 0.968881),
)


def seen_apart(
    one: tuple[int, int, int], other: tuple[int, int, int], vision: tuple[tuple[float, ...], ...]
) -> float:
    """How far apart two colours look with a colour-vision deficiency (linear RGB distance)."""

    def simulate(colour: tuple[int, int, int]) -> list[float]:
        channels = [linear(c) for c in colour]
        return [
            min(1.0, max(0.0, sum(m * c for m, c in zip(row, channels, strict=True))))
            for row in vision
        ]

    return sum((a - b) ** 2 for a, b in zip(simulate(one), simulate(other), strict=True)) ** 0.5


class Probe(App[None]):
    """A bare app with one table of the status words, as the console's tables show them."""

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")


async def shown_by_theme(themes: ThemeSet, **app_options: Any) -> dict[str, dict[str, Style]]:
    """Registers every theme on a bare App, switches to each in turn and returns the style each
    status word ends up with on screen (after Textual's filters), by theme."""
    app = Probe(**app_options)
    for theme in themes.themes.values():
        app.register_theme(theme.textual)
    shown = {}
    async with app.run_test(size=(40, 12)) as pilot:
        for theme in themes.themes.values():
            app.theme = theme.name
            table = app.query_one(DataTable)
            table.clear(columns=True)
            table.add_column("STATUS")
            table.add_row("-")  # where the cursor sits
            table.add_rows([Text(key, theme.palette[key])] for key in STATUS_KEYS)
            await pilot.pause()
            assert app.current_theme is theme.textual
            if not app.native_ansi_color:  # else the terminal's own background
                assert app.screen.styles.background == Color.parse(theme.textual.background)
            shown[theme.name] = {
                segment.text.strip(): segment.style
                for strip in app.screen._compositor.render_strips()
                for segment in strip
                if segment.text.strip() in STATUS_KEYS and segment.style is not None
            }
    return shown


# --- the shipped themes ------------------------------------------------------------------------


def test_every_shipped_theme_loads_with_every_status_style(shipped: ThemeSet) -> None:
    assert shipped.problems == ()
    assert set(shipped.names) == SHIPPED
    assert {DEFAULT_THEME, MONO_THEME, ANSI_THEME} <= SHIPPED
    for name, theme in shipped.themes.items():
        assert theme.name == theme.textual.name == name
        assert theme.path == resource_dir("themes") / f"{name}.yaml"
        assert tuple(theme.palette) == STATUS_KEYS
        assert theme.severity_style(Severity.CRIT) == theme.palette["crit"]
    assert shipped.themes["fleetdeck-light"].textual.dark is False
    assert shipped.themes[ANSI_THEME].textual.ansi is True


@pytest.fixture(scope="module")
def shown(shipped: ThemeSet) -> dict[str, dict[str, Style]]:
    return asyncio.run(shown_by_theme(shipped))


def test_every_shipped_theme_registers_and_shows_its_status_styles_as_written(
    shipped: ThemeSet, shown: dict[str, dict[str, Style]]
) -> None:
    for theme in shipped.themes.values():
        for key in STATUS_KEYS:
            written, seen = Style.parse(theme.palette[key]), shown[theme.name][key]
            where = f"{theme.name} {key}"
            assert bool(seen.bold) == bool(written.bold), where
            assert bool(seen.reverse) == bool(written.reverse), where
            if written.color is None:
                continue
            assert seen.color is not None, where
            if theme.textual.ansi:  # passed to the terminal as its own colour
                assert seen.color.type is ColorType.STANDARD, where
                assert seen.color.number == written.color.number, where
            else:  # shown as written, not through Textual's fixed ANSI palette
                assert rgb(seen.color) == rgb(written.color), where


def test_truecolor_themes_keep_every_status_word_readable(
    shipped: ThemeSet, shown: dict[str, dict[str, Style]]
) -> None:
    for theme in shipped.themes.values():
        if theme.textual.ansi:  # the terminal's own scheme decides
            continue
        least = 7.0 if theme.name == "fleetdeck-high-contrast" else 4.5  # WCAG AAA / AA
        for key, seen in shown[theme.name].items():
            assert seen.color is not None and seen.bgcolor is not None
            ratio = contrast(rgb(seen.color), rgb(seen.bgcolor))
            assert ratio >= least, f"{theme.name} {key}: {seen} is {ratio:.2f}:1"


def test_colorblind_theme_shows_ok_and_crit_in_blue_and_orange(shipped: ThemeSet) -> None:
    theme = shipped.themes["fleetdeck-colorblind"]
    ok = [palette_rgb(theme, "ok"), Color.parse(theme.textual.success or "?").rgb]
    crit = [palette_rgb(theme, key) for key in ("crit", "down")]
    crit.append(Color.parse(theme.textual.error or "?").rgb)
    for colour in ok + crit:
        assert not (hue(colour) < 20 or hue(colour) > 330), f"{colour} is red"
        assert not 75 < hue(colour) < 165, f"{colour} is green"
    assert all(190 < hue(colour) < 250 for colour in ok), "ok is not blue"
    assert all(25 < hue(colour) < 50 for colour in crit), "crit is not orange"
    # and they stay apart for deuteranopia and protanopia, where a green and a red do not
    green, red = (0x5F, 0xAF, 0x5F), (0xFF, 0x5F, 0x5F)
    for vision in (PROTANOPIA, DEUTERANOPIA):
        assert seen_apart(ok[0], crit[0], vision) > 0.5
        assert seen_apart(green, red, vision) < 0.3  # the measure does tell them apart


def test_mono_theme_has_no_hue_and_marks_status_by_attributes(shipped: ThemeSet) -> None:
    theme = shipped.themes[MONO_THEME]
    colours = css_colours(theme)
    assert len(colours) > 100  # the derived variables are checked too
    for name, colour in colours.items():
        assert colour.r == colour.g == colour.b, f"{name} {colour.hex} is not grey"
    for key, style in theme.palette.items():
        assert style_colours(style) == [], f"{key}: {style}"
    looks = {key: Style.parse(theme.palette[key]) for key in ("ok", "warn", "crit", "ack")}
    assert len(set(looks.values())) == len(looks)  # each alarm level looks different
    assert looks["crit"].reverse and looks["crit"].bold


def test_sixteen_colour_theme_uses_only_ansi_colours(shipped: ThemeSet) -> None:
    theme = shipped.themes[ANSI_THEME]
    for field in COLOUR_KEYS:
        value = getattr(theme.textual, field)
        assert value is None or value.startswith("ansi_"), field
    for name, colour in css_colours(theme).items():
        assert colour.ansi is not None or colour.a == 0, f"{name} {colour}"  # or transparent
    for key, style in theme.palette.items():
        for colour in style_colours(style):
            assert colour.type is ColorType.STANDARD and colour.number is not None, key
            assert colour.number < 16, key


async def test_no_color_strips_colour_and_keeps_bold_and_reverse(
    shipped: ThemeSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # Textual reads it when the App is built
    assert app_ansi_color() is True
    shown = await shown_by_theme(shipped, ansi_color=app_ansi_color())
    for theme in shipped.themes.values():
        for key in STATUS_KEYS:
            written, seen = Style.parse(theme.palette[key]), shown[theme.name][key]
            where = f"{theme.name} {key}"
            assert seen.color is not None and seen.color.type is ColorType.DEFAULT, where
            assert seen.bgcolor is not None and seen.bgcolor.type is ColorType.DEFAULT, where
            assert (seen.bold, seen.reverse) == (written.bold, written.reverse), where
    assert app_ansi_color({"TERM": "xterm-256color"}) is None


# --- broken files ------------------------------------------------------------------------------

BROKEN = {
    "yaml": (GOOD.replace('primary: "#5fafff"', 'primary: ["#5fafff"'), 4, "flow sequence"),
    "unknown key": (
        GOOD.replace("dark: true\n", "dark: true\nshadow: 2\n"),
        3,
        "unknown key 'shadow'",
    ),
    "missing key": (GOOD.replace('background: "#121212"\n', ""), 1, "missing 'background'"),
    "bad colour": (GOOD.replace('"#121212"', '"#12121"'), 5, "bad colour '#12121'"),
    "unknown colour": (GOOD.replace('"#121212"', "blak"), 5, "did you mean 'black'?"),
    "bad style": (
        GOOD.replace("crit: bold red", "crit: bold redd"),
        10,
        "bad Rich style 'bold redd'",
    ),
    "missing style": (GOOD.replace("  drain: cyan\n", ""), 7, "status: missing 'drain'"),
    "bad variable": (GOOD + "variables:\n  border: reddd\n", 16, "variables.border: bad value"),
    "unknown variable": (GOOD + "variables:\n  bordr: red\n", 16, "did you mean 'border'?"),
    "bad text style": (GOOD + "variables:\n  block-cursor-text-style: blinky\n", 16, "blinky"),
    "out of range": (GOOD + "text_alpha: 2\n", 15, "text_alpha: 2 is out of range"),
    "empty": ("", 1, "empty theme file"),
    "name": (GOOD.replace("name: {name}", "name: other"), 1, "does not match the file name"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_file_is_reported_at_its_line_and_skipped(tmp_path: Path, kind: str) -> None:
    text, line, fragment = BROKEN[kind]
    (tmp_path / "good.yaml").write_text(GOOD.format(name="good"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("{name}", "broken"))
    themes = load_themes([tmp_path])
    assert themes.names == ("good",)
    assert len(themes.problems) == 1, themes.problems
    problem = themes.problems[0]
    assert str(problem).startswith(f"{broken}:{line}:"), str(problem)
    assert fragment in problem.message


def test_folders_that_are_missing_are_skipped_and_unlistable_ones_reported(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "themes"
    not_a_folder.write_text("")
    themes = load_themes([tmp_path / "absent", not_a_folder, resource_dir("themes")])
    assert set(themes.names) == SHIPPED
    assert [str(p) for p in themes.problems] == [
        f"{not_a_folder}:1:1: cannot list: Not a directory"
    ]


def test_a_user_file_overrides_a_built_in_and_a_broken_one_does_not(tmp_path: Path) -> None:
    builtin = resource_dir("themes")
    mine = (
        (builtin / "fleetdeck-dark.yaml")
        .read_text()
        .replace('primary: "#5fafff"', 'primary: "#ff8700"')
    )
    (tmp_path / "fleetdeck-dark.yaml").write_text(mine)
    (tmp_path / "fleetdeck-mono.yaml").write_text("name: fleetdeck-mono\ndark: maybe\n")
    themes = load_themes([builtin, tmp_path])
    assert themes.themes[DEFAULT_THEME].path == tmp_path / "fleetdeck-dark.yaml"
    assert themes.themes[DEFAULT_THEME].textual.primary == "#ff8700"
    assert themes.themes[MONO_THEME].path == builtin / "fleetdeck-mono.yaml"
    assert {p.file for p in themes.problems} == {str(tmp_path / "fleetdeck-mono.yaml")}
    assert set(themes.names) == SHIPPED


def test_the_user_folder_follows_xdg_config_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/oncall")
    default = Path("/home/oncall/.config/fleetdeck/themes")
    assert theme_folders({}) == (resource_dir("themes"), default)
    assert theme_folders({"XDG_CONFIG_HOME": "relative"})[1] == default  # ignored, per spec
    assert theme_folders({"XDG_CONFIG_HOME": "/etc/xdg"})[1] == Path("/etc/xdg/fleetdeck/themes")


# --- choosing a theme --------------------------------------------------------------------------

TERMINALS = [
    ({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, DEFAULT_THEME),
    ({"TERM": "tmux-256color"}, DEFAULT_THEME),
    ({"TERM": "xterm-kitty"}, DEFAULT_THEME),
    ({"TERM": "xterm", "COLORTERM": "24bit"}, DEFAULT_THEME),
    ({"TERM": "linux"}, ANSI_THEME),
    ({"TERM": "screen"}, ANSI_THEME),
    ({"TERM": "xterm"}, ANSI_THEME),
    ({"TERM": "xterm-16color"}, ANSI_THEME),
    ({"TERM": "xterm-256color", "TEXTUAL_COLOR_SYSTEM": "standard"}, ANSI_THEME),
    ({"TERM": "linux", "TEXTUAL_COLOR_SYSTEM": "truecolor"}, DEFAULT_THEME),
    ({"TERM": "dumb"}, MONO_THEME),
    ({"TERM": "xterm-256color", "COLORTERM": "truecolor", "NO_COLOR": "1"}, MONO_THEME),
    ({"TERM": "linux", "NO_COLOR": ""}, MONO_THEME),
]


@pytest.mark.parametrize(("environ", "expected"), TERMINALS)
def test_a_terminal_gets_the_theme_for_what_rich_will_render(
    environ: dict[str, str], expected: str
) -> None:
    assert auto_theme_name(environ) == expected
    if "NO_COLOR" not in environ:  # the same verdict as Rich's own detection, as Textual runs it
        system = RichConsole(
            force_terminal=True,
            color_system=environ.get("TEXTUAL_COLOR_SYSTEM", "auto"),  # type: ignore[arg-type]
            _environ=environ,
        ).color_system
        by_system = {None: MONO_THEME, "standard": ANSI_THEME}
        assert by_system.get(system, DEFAULT_THEME) == expected


def test_an_explicit_theme_wins_and_an_unknown_one_names_the_known_ones(
    shipped: ThemeSet,
) -> None:
    no_colour = {"NO_COLOR": "1", "TERM": "linux"}
    assert choose_theme(shipped, None, no_colour).name == MONO_THEME
    assert choose_theme(shipped, "fleetdeck-light", no_colour).name == "fleetdeck-light"
    with pytest.raises(ConfigError) as raised:
        choose_theme(shipped, "fleetdeck-drak", no_colour)
    message = str(raised.value)
    assert "unknown theme 'fleetdeck-drak' (did you mean 'fleetdeck-dark'?)" in message
    assert all(name in message for name in SHIPPED)
