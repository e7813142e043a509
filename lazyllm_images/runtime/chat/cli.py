"""Command line of the chat page: parse, read the key and token files, warn when anyone may use it, serve."""

from __future__ import annotations

import logging
import sys

from ..netaddr import exposure_warning, shout
from .config import ConfigError, build_parser, config_from_args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would repeat the upstream URL per call
    logging.getLogger("lazyllm.chat").info("chat page for model %s via %s%s", cfg.model, cfg.upstream,
                                           " (with API key)" if cfg.api_key else "")
    shout(exposure_warning("the chat page", args.host, cfg.auth_token, "Pass --auth-token-file or bind 127.0.0.1.",
                           can="chat with the model on your account"))

    import uvicorn

    from .app import make_app

    uvicorn.run(make_app(cfg), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=5)
    return 0
