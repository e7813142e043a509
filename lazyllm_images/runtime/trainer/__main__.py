"""``python -m lazyllm_images.runtime.trainer --work DIR --model DIR``: one training run of a job (train.py), its
output (the libraries' too, C level included) both on stdout and appended to DIR/train.log.

``python -m lazyllm_images.runtime.trainer export --work DIR --model DIR --out DIR``: the result as a model folder
(export.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

LOG_FILE = "train.log"


class Tee:
    """File descriptors 1 and 2 into a pipe; a thread copies it to the old stdout and to a file."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "ab", buffering=0)
        self.real = os.dup(1)
        read, write = os.pipe()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self.read = read
        self.thread = threading.Thread(target=self._pump, name="tee", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while True:
            chunk = os.read(self.read, 65536)
            if not chunk:
                return
            os.write(self.real, chunk)
            self.file.write(chunk)

    def close(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(self.real, 1)                           # the pipe's last writers go: the pump reads its end
        os.dup2(self.real, 2)
        self.thread.join(timeout=10)
        self.file.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.trainer")
    p.add_argument("action", nargs="?", default="train", choices=["train", "export"])
    p.add_argument("--work", type=Path, required=True, help="the job's folder (its volume)")
    p.add_argument("--model", required=True, help="the base model's folder")
    p.add_argument("--out", type=Path, help="export: the folder to write (must not exist)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.action == "export":
        from .export import export
        return export(args.work, args.model, args.out)
    tee = Tee(args.work / LOG_FILE)
    try:
        from .train import run
        return run(args.work, args.model)
    finally:
        tee.close()


if __name__ == "__main__":
    raise SystemExit(main())
