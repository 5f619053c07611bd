"""`fleetdeck tui`: the live fleet console (also plain `fleetdeck` when a fleet config is found)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser("tui", help="the live fleet console (the default)")
    add_common(parser)
    parser.add_argument("--read-only", action="store_true", help="refuse every action")
    parser.add_argument("--theme", metavar="NAME", help="a theme from themes/ (see --help)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.actions import Actions, audit_path
    from console.audit import AuditLog
    from console.collector import Collector
    from console.commandline import CommandLine
    from console.headless import audit_overlay, load_fleet, plugins
    from console.history import History
    from console.tui.app import FleetdeckApp
    from console.tui.feed import CollectorFeed
    from console.tui.themes import choose_theme, load_themes, theme_folders

    config = load_fleet(args.config)
    collector = Collector(
        config, plugins(), overlay=audit_overlay(config, args.audit_log), history=History()
    )
    read_only = args.read_only or config.read_only
    actions = Actions(
        config,
        collector,
        AuditLog(audit_path(args.audit_log, config)),
        read_only=read_only,
        commands=CommandLine.for_fleet(config, args.audit_log),
    )
    themes = load_themes(theme_folders())
    theme = choose_theme(themes, args.theme or config.theme)  # an unknown name: a clear error
    app = FleetdeckApp(
        CollectorFeed(collector),
        actions,
        read_only=read_only,
        commands=config.commands,
        themes=themes,
        theme=theme,
    )
    app.run()
    return 0
