"""``python -m lazyllm_images.runtime.infer --db PATH --models HOST=INNER ... --gpus N [--token-file F]``

Starts the inference-service controller: records in the SQLite file ``--db`` (put it in a volume), tokens from
``--token-file`` (created with one generated token when missing; the token is written there, never printed), the
model roots a client may name, the GPUs it may hand out. Before serving it re-adopts the model servers it
launched earlier (found by label) and marks the missing ones Failed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from ..controller.cliargs import (
    build_flags,
    build_options,
    common_flags,
    load_tokens,
    serve,
)
from ..controller.cliargs import positive as _positive
from ..controller.cliargs import root as _root
from .request import DEFAULT_FRAMEWORKS

log = logging.getLogger("lazyllm.infer")
DEFAULT_PORT = 31340                     # LazyCraft's deployment of upstream's service


def _frameworks(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    from ...frameworks import NAMES
    unknown = [n for n in names if n != "auto" and n not in NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--frameworks {text!r}: known ones are auto, {', '.join(NAMES)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.infer",
                                description="Inference-service controller (upstream's /v1/inference_services).")
    common_flags(p, DEFAULT_PORT)
    p.add_argument("--models", action="append", type=_root, default=[], metavar="HOST=INNER",
                   help="a model root: HOST on the engine's host, seen here at INNER (PATH alone: the same on both "
                        "sides); repeatable. Clients name folders under these roots")
    p.add_argument("--no-hub", dest="allow_hub", action="store_false",
                   help="refuse hub ids: only folders under the model roots")
    p.add_argument("--frameworks", type=_frameworks, default=DEFAULT_FRAMEWORKS,
                   help=f"the frameworks clients may ask for (default {','.join(DEFAULT_FRAMEWORKS)})")
    p.add_argument("--publish-host", default="127.0.0.1",
                   help="the host address the model servers' ports are published on (default 127.0.0.1)")
    p.add_argument("--endpoint-host", help="the host name in the endpoints clients get (default: --publish-host, "
                                           "127.0.0.1 for a wildcard)")
    p.add_argument("--engine-network", help="the engine network this controller's container is on: model servers "
                                            "join it and their health is checked by container name")
    p.add_argument("--poll-interval", type=_positive, default=2.0,
                   help="seconds between polls of the servers still starting (default 2)")
    p.add_argument("--ready-poll-interval", type=_positive, default=10.0,
                   help="seconds between health checks of a Ready server (default 10)")
    p.add_argument("--ready-timeout", type=_positive, default=1800.0,
                   help="seconds a server may take to become healthy before it is Failed (default 1800)")
    build_flags(p)
    return p.parse_args(argv)


def packaged_model(name: str) -> bool:
    """A model that ships in an image (``recipes/models.yaml``): no hub needed."""
    from ...services.models import catalog
    wanted = name.strip().lower()
    return any(wanted in [e["name"].lower(), *(a.lower() for a in e.get("aliases", []))] for e in catalog())


def real_launcher(args: argparse.Namespace, instance: str):
    from .engine_launcher import ModelServerLauncher
    return ModelServerLauncher(instance, publish_host=args.publish_host, endpoint_host=args.endpoint_host,
                               network=args.engine_network, build=build_options(args))


def build(args: argparse.Namespace, make_launcher: Callable | None = None):
    """(the app, what to tell the operator at start) from ARGS; raises ValueError-like errors with a message."""
    from ..controller.core import Controller
    from ..controller.gpus import GpuPool
    from ..controller.modelpaths import ModelRoots
    from ..controller.store import Store
    from .app import InferService, create_app
    store = Store(args.db)
    ring, token_told = load_tokens(args)
    instance = store.instance_id()
    launcher = (make_launcher or real_launcher)(args, instance)
    controller = Controller(store, launcher, GpuPool(args.gpus), "infer", server=True,
                            poll_interval=args.poll_interval, ready_interval=args.ready_poll_interval,
                            ready_timeout=args.ready_timeout)
    roots = ModelRoots(args.models, allow_hub=args.allow_hub, packaged=packaged_model)
    app = create_app(InferService(controller, roots, args.frameworks, args.max_body_bytes), ring)
    told = [f"records: {args.db} (controller {instance})",
            f"model roots: {roots.describe()}; hub ids {'allowed' if args.allow_hub else 'refused'}",
            f"GPUs: {','.join(map(str, args.gpus)) or 'none'}; frameworks: {','.join(args.frameworks)}",
            token_told]
    return app, told


def main(argv: list[str] | None = None, make_launcher: Callable | None = None) -> int:
    args = parse_args(argv)
    return serve(args, lambda: build(args, make_launcher),
                 "inference services API (/v1/inference_services)")


if __name__ == "__main__":
    raise SystemExit(main())
