"""`fleetdeck agent`: serve this node's GPU, host and engine telemetry and its deployments.

Prints `listening on http://HOST:PORT` on stdout (flushed) once it accepts connections; logs go
to stderr and the log file. SIGINT and SIGTERM stop it cleanly with exit 0. Flags override the
config file (`-c agent.yaml`, see examples/agent.reference.yaml).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from console.cli import add_common

    parser = subparsers.add_parser(
        "agent",
        help="run the node agent: GPU/host telemetry, engine figures, rollbacks, hooks",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    add_common(parser)
    for action in parser._actions:  # -c names the agent's config here, not a fleet's
        if action.dest == "config":
            action.help = "agent config (agent.yaml); defaults apply without one"
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:9401)"
    )
    parser.add_argument("--token-file", metavar="FILE", help="file holding the bearer token")
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    from dataclasses import replace
    from pathlib import Path

    from console.agent.config import (
        TlsConfig,
        default_agent_config,
        load_agent_config,
        parse_listen,
    )
    from console.agent.server import serve, tls_context
    from console.errors import ConfigError
    from console.fleet import SecretRef

    parser: argparse.ArgumentParser = args.parser
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    config = default_agent_config() if args.config is None else load_agent_config(args.config)
    if args.listen is not None:
        try:
            config = replace(config, listen=parse_listen(args.listen))
        except ValueError as exc:
            parser.error(f"--listen: {exc}")
    if args.token_file is not None:
        config = replace(config, token=SecretRef(file=str(Path(args.token_file).absolute())))
    if args.tls_cert is not None:
        config = replace(config, tls=TlsConfig(cert=args.tls_cert, key=args.tls_key))
    token = None if config.token is None else config.token.resolve()
    if token == "":
        raise ConfigError(f"the bearer token ({config.token}) is empty")
    tls = None if config.tls is None else tls_context(config.tls.cert, config.tls.key)
    stderr = logging.StreamHandler(sys.stderr)  # a daemon's log: journald reads stderr
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("fleetdeck").addHandler(stderr)
    return asyncio.run(serve(config, token, tls))
