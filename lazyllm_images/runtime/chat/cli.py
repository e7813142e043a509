"""Command line of the chat page: parse, read the key file, serve with uvicorn."""

from __future__ import annotations

import logging
import sys

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

    import uvicorn

    from .app import make_app

    uvicorn.run(make_app(cfg), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=5)
    return 0
