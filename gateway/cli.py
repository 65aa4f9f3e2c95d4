"""The ``metastudio-gateway`` command line: serve, demo, simulator, check-config, hash-key.

Every failure a user can cause (a bad flag, bad configuration, missing credentials) ends in
one message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import os
import sys
from collections.abc import Mapping, Sequence

from gateway import __version__
from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config.settings import Settings, listen_address, load_settings
from gateway.config.url_signing import UrlSigningKey, url_signing_keys
from gateway.credentials.chain import select_credentials
from gateway.credentials.holder import CredentialsHolder
from gateway.errors import ConfigError
from gateway.numbers import ascii_digits
from gateway.observability.logs import configure_logging
from gateway.server import serve_until_signalled
from gateway.shared.tier import describe as describe_shared_tier

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT, as shells report a command ended by Ctrl-C."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop ``serve`` and ``demo`` run on: uvloop where it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _port(text: str) -> int:
    if not ascii_digits(text) or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _host(text: str) -> str:
    try:
        return listen_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address or a host name: {text!r}") from None


def _count(text: str) -> int:
    if not ascii_digits(text) or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"not a count from 1 to 1000000: {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metastudio-gateway",
        description="Signing, caching gateway in front of Huawei Cloud MetaStudio's training-job list.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the production server")
    serve.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")
    serve.add_argument("--host", type=_host, help="listen address (default: $GATEWAY_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=_port, help="listen port; 0 picks a free one (default: $GATEWAY_PORT or 8080)")

    demo = commands.add_parser(
        "demo",
        help="run the simulator, a demo identity provider and the gateway in front of them, with demo tenants"
        " and a web page",
    )
    demo.add_argument(
        "--port", type=_port, default=8080, help="gateway port on 127.0.0.1; 0 picks a free one (default 8080)"
    )
    demo.add_argument(
        "--page-port", type=_port, default=8081, help="demo page port on 127.0.0.1; 0 picks a free one (default 8081)"
    )

    simulator = commands.add_parser("simulator", help="run the MetaStudio simulator alone")
    simulator.add_argument("--port", type=_port, default=8090, help="port on 127.0.0.1 (default 8090)")
    simulator.add_argument("--ak", default="sim-ak", help="access key the simulator accepts")
    simulator.add_argument("--sk", default="sim-sk", help="secret key the simulator accepts")
    simulator.add_argument(
        "--jobs-per-user",
        type=_count,
        default=None,
        help="jobs per app user id in the dataset (default: 25 to 40 at random)",
    )

    check = commands.add_parser("check-config", help="validate configuration and credentials presence")
    check.add_argument("--config", help="TOML config file (default: $GATEWAY_CONFIG)")

    commands.add_parser(
        "hash-key",
        help="read an API key on stdin (prompted for, not echoed, on a terminal), print its api_key_sha256 value",
    )
    return parser


def _load(env: Mapping[str, str], config: str | None) -> tuple[Settings, CredentialsHolder, tuple[UrlSigningKey, ...]]:
    problems: list[str] = []
    settings = credentials = None
    keys: tuple[UrlSigningKey, ...] = ()
    try:
        settings = load_settings(env, config)
    except ConfigError as exc:
        problems += exc.problems
    try:
        credentials = select_credentials(env, clock=SystemClock())
    except ConfigError as exc:
        problems += exc.problems
    try:
        keys = url_signing_keys(env)
    except ConfigError as exc:
        problems += exc.problems
    if problems or settings is None or credentials is None:
        raise ConfigError(problems)
    return settings, credentials, keys


def _serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings, credentials, keys = _load(env, args.config)
    server = dataclasses.replace(
        settings.server,
        host=settings.server.host if args.host is None else args.host,
        port=settings.server.port if args.port is None else args.port,  # 0 is a port: pick a free one
    )
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(credentials.confirm(settings.proxies))  # auto mode's last resort (ECS metadata) must answer now
            configure_logging()
            app = create_app(settings, credentials=credentials, url_signing_keys=keys)
            # From here on a SIGINT drains, as SIGTERM does, and a second one stops at once.
            return runner.run(serve_until_signalled(app, server))
    except KeyboardInterrupt:  # before serving began: nothing to drain
        print("metastudio-gateway: interrupted before serving began", file=sys.stderr)
        return EXIT_INTERRUPTED


def _check_config(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings, credentials, keys = _load(env, args.config)
    signing = f"{len(keys)} URL signing key(s), '{keys[0].kid}' signs" if keys else "a random URL signing key"
    print(
        f"ok: {len(settings.tenants)} tenant(s), upstream {settings.upstream.endpoint}, "
        f"project {settings.upstream.project_id}, cache ttl {settings.cache.ttl_seconds:g}s; "
        f"{credentials.describe()}; {signing}; {describe_shared_tier(settings.shared)}; {settings.proxies.describe()}"
    )
    return 0


def _hash_key() -> int:
    if sys.stdin.isatty():  # a person at a terminal: say what is wanted, and do not echo the key
        try:
            key = getpass.getpass("API key (not echoed): ", stream=sys.stderr).strip()
        except EOFError:
            key = ""
    else:  # the first line that is not blank: nothing more is waited for (stdin may stay open)
        key = next((line.strip() for line in sys.stdin if line.strip()), "")
    if not key:
        print("metastudio-gateway: hash-key: no API key on stdin", file=sys.stderr)
        return EXIT_CONFIG
    print(hash_key(key))
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run a command; returns the exit status."""
    args = _parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        if args.command == "serve":
            return _serve(args, env)
        if args.command == "check-config":
            return _check_config(args, env)
        if args.command == "hash-key":
            return _hash_key()
        if args.command == "simulator":
            from gateway.simulator import run_simulator

            run_simulator(
                host="127.0.0.1",
                port=args.port,
                access_key=args.ak,
                secret_key=args.sk,
                jobs_per_user=args.jobs_per_user,
            )
            return 0
        from gateway.demo import run_demo

        configure_logging()
        with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(run_demo(port=args.port, page_port=args.page_port))
        return 0
    except ConfigError as exc:
        print(f"metastudio-gateway: configuration error: {'; '.join(exc.problems)}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"metastudio-gateway: {exc.strerror or exc}", file=sys.stderr)
        return 1
