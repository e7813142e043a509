"""One ``docker build`` with BuildKit: argv (no shell), its log on disk, the failing step when it fails."""

from __future__ import annotations

import collections
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import BuildError
from ..host import BUILDKIT_HINT, BuildkitClient, buildkit_client
from .hostconfig import HostConfig

TAIL = 30


def require_buildkit() -> BuildkitClient:
    found = buildkit_client()
    if found is None:
        raise BuildError("no BuildKit-capable docker client found", BUILDKIT_HINT)
    return found


def build_argv(bk: BuildkitClient, ref: str, context: Path, hc: HostConfig, dockerfile: str = "Dockerfile") -> list[str]:
    argv = bk.build_argv() + ["--progress=plain", "--tag", ref, "--file", str(context / dockerfile)]
    for sid, src in sorted(hc.secrets.items()):
        argv += ["--secret", f"id={sid},src={src}"]
    for key in sorted(hc.build_args):     # the value comes from the client's environment: never in argv or the log
        argv += ["--build-arg", key]
    return argv + [str(context)]


@dataclass
class BuildResult:
    returncode: int
    tail: list[str]
    log: Path
    failed_step: str | None


_STEP = re.compile(r"^#\d+ \[[^\]]+\] (.*)$")


def failing_step(lines: list[str]) -> str | None:
    """BuildKit's plain output names the failed step after '------' as ' > [3/5] RUN ...'."""
    for i, line in enumerate(lines):
        if line.strip() == "------" and i + 1 < len(lines) and lines[i + 1].lstrip().startswith(">"):
            return lines[i + 1].strip().lstrip("> ").rstrip(":")
    steps = [m.group(1) for m in map(_STEP.match, lines) if m]
    return steps[-1] if steps else None


def run_build(argv: list[str], bk: BuildkitClient, log: Path, on_line: Callable[[str], None] | None = None,
              stdin: str | None = None) -> BuildResult:
    log.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=400)
    with open(log, "w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=bk.build_env(),
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, text=True,
                                bufsize=1)
        try:
            if stdin is not None:
                proc.stdin.write(stdin)
                proc.stdin.close()
            for line in proc.stdout:
                out.write(line)
                tail.append(line.rstrip("\n"))
                if on_line:
                    on_line(line.rstrip("\n"))
            code = proc.wait()
        except BaseException:                 # Ctrl-C: the docker CLI got SIGINT too and cancels the build
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    lines = list(tail)
    return BuildResult(code, lines[-TAIL:], log, failing_step(lines) if code else None)


def label_only_build(bk: BuildkitClient, base_ref: str, ref: str, labels: dict[str, str], log: Path) -> None:
    """Add labels to an image without a new file-system layer: FROM it, LABEL, same tag."""
    from ..dockerfile import dq
    text = f"FROM {base_ref}\nLABEL " + " \\\n      ".join(f"{k}={dq(v)}" for k, v in sorted(labels.items())) + "\n"
    result = run_build(bk.build_argv() + ["--progress=plain", "--tag", ref, "-"], bk, log, stdin=text)
    if result.returncode:
        raise BuildError(f"could not label {ref}: " + (result.tail[-1] if result.tail else "docker build failed"),
                         f"full log: {log}")
