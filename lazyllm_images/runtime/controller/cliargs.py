"""Command-line argument types every controller's ``__main__`` shares (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse

from .gpus import parse_devices
from .modelpaths import Root


def root(text: str) -> Root:
    """``HOST=INNER`` or ``PATH``: a folder on the engine's host and where this process sees it."""
    try:
        return Root.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def devices(text: str) -> tuple[int, ...]:
    try:
        return parse_devices(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def build_flags(parser: argparse.ArgumentParser) -> None:
    """The build options the CLI built the stacks with: the controller computes the same image names."""
    stacks = parser.add_argument_group("stacks", "the build options the CLI built the stacks with: the controller "
                                                 "computes the same image names and never builds")
    for flag in ("--base", "--cuda", "--python", "--torch"):
        stacks.add_argument(flag)


def build_options(args: argparse.Namespace):
    from ...requests import BuildOptions
    return BuildOptions(base=args.base, cuda=args.cuda, python=args.python, torch=args.torch)


def common_flags(parser: argparse.ArgumentParser, port: int) -> None:
    """What every controller takes: where it listens, its records, its tokens, its GPUs, its body limit."""
    from pathlib import Path
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")
    parser.add_argument("--db", required=True, type=Path, help="the SQLite file of the records (in a volume)")
    parser.add_argument("--token-file", type=Path, help="API tokens, one a line (default: 'tokens' beside --db); "
                                                        "created with one generated token when missing")
    parser.add_argument("--gpus", type=devices, default=(), metavar="none|N|I,J,...",
                        help="the GPUs the controller may hand out: a count (0..N-1) or device indexes (default none)")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024, help="request body limit (default 64 KiB)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def load_tokens(args: argparse.Namespace):
    """(the ring, what to tell the operator about it): never the token itself."""
    from . import tokens
    token_file = args.token_file or args.db.parent / "tokens"
    ring, generated = tokens.load(token_file)
    told = (f"token: generated into {token_file} (mode 0600); read it from there and send it as the 'token' header"
            if generated else f"tokens: {len(ring)} from {token_file}")
    return ring, told


def serve(args: argparse.Namespace, build, what: str) -> int:
    """Build the app (StoreError/TokenError: exit 2 with the message), say what was told, serve until stopped."""
    import logging
    import sys

    from .store import StoreError
    from .tokens import TokenError
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app, told = build()
    except (StoreError, TokenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn
    log = logging.getLogger("lazyllm.controller")
    for line in told:
        log.info("%s", line)
    log.info("%s on http://%s:%s", what, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=3)        # an open log follow must not hold a stop
    return 0
