"""``python -m lazyllm_images.runtime.graph.sandbox --socket PATH [--timeout S] [--memory-mb N] ...``

Serves Code calls on a unix socket until SIGTERM/SIGINT. In the sandbox container: run it non-root with
``--network none``, a read-only root and a tmpfs for ``--scratch``; on a host as root it drops each call to an
unprivileged uid in its own network namespace (see ``confine``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .confine import Limits
from .server import Worker


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Limits()
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.graph.sandbox",
                                description="Run Code nodes of workflow graphs in confined child processes.")
    p.add_argument("--socket", required=True, help="unix socket path to listen on")
    p.add_argument("--scratch", help="folder for the per-session scratch folders (default: a new temp folder)")
    p.add_argument("--timeout", type=float, default=d.timeout, help=f"wall-clock seconds per call ({d.timeout:g})")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help=f"memory per call, MiB ({d.memory_mb})")
    p.add_argument("--nproc", type=int, default=d.nproc, help=f"processes+threads per call ({d.nproc})")
    p.add_argument("--fsize-mb", type=int, default=d.fsize_mb, help=f"largest file a call may write, MiB "
                   f"({d.fsize_mb})")
    p.add_argument("--nofile", type=int, default=d.nofile, help=f"open files per call ({d.nofile})")
    p.add_argument("--uid", type=int, help="uid (and gid) calls run as when the worker is root (default 65534)")
    p.add_argument("--parallel", type=int, help="calls at once (default: CPU count, at least 2)")
    p.add_argument("--socket-mode", type=lambda v: int(v, 8), default=0o600,
                   help="permissions of the socket, octal (default 600: only this uid may connect)")
    p.add_argument("--no-landlock", action="store_true",
                   help="do not use Landlock (as root: read-only mount namespace instead)")
    p.add_argument("--quiet", action="store_true", help="log errors only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s sandbox %(levelname)s %(message)s")
    limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, nproc=args.nproc, fsize_mb=args.fsize_mb,
                    nofile=args.nofile)
    worker = Worker(args.socket, limits=limits, scratch=args.scratch, uid=args.uid, max_parallel=args.parallel,
                    socket_mode=args.socket_mode, landlock=not args.no_landlock)

    def stop(signum: int, frame: object) -> None:
        worker.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
