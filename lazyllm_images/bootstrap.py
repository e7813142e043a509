"""Offline base images: a minimal Debian root file system from debootstrap, imported into the engine.

No registry is touched. This is the base the tests use and what an air-gapped host uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import engine
from .errors import EngineError, LazyllmError
from .locks import named_lock
from .paths import state_dir

DEFAULT_REPOSITORY = "lazyllm/base-offline"
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13", "bullseye": "11"}


def default_tag(suite: str) -> str:
    return f"{DEFAULT_REPOSITORY}:debian-{suite}"


def _ensure_debootstrap(echo: Callable[[str], None]) -> str:
    found = shutil.which("debootstrap") or (os.path.exists("/usr/sbin/debootstrap") and "/usr/sbin/debootstrap")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        echo("installing debootstrap from the distribution")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "debootstrap"]):
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise LazyllmError(f"could not install debootstrap: {' '.join(argv)} failed",
                                   (done.stderr.strip().splitlines() or ["apt-get failed"])[-1])
        found = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        return found
    raise LazyllmError("debootstrap is not installed",
                       "install it (Debian/Ubuntu: 'sudo apt-get install debootstrap') and run this as root")


def bootstrap_base(suite: str = "bookworm", tag: str | None = None, mirror: str = "http://deb.debian.org/debian",
                   force: bool = False, echo: Callable[[str], None] = print) -> tuple[str, bool]:
    """Build ``tag`` (default ``lazyllm/base-offline:debian-SUITE``) unless it exists. Returns (ref, created)."""
    ref = tag or default_tag(suite)
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    client = engine.client()
    with named_lock(f"image:{ref}", on_wait=lambda: echo(f"waiting for another bootstrap of {ref}")):
        if not force and engine.image_exists(ref):
            return ref, False
        if os.geteuid() != 0:
            raise LazyllmError("bootstrapping a base needs root (debootstrap creates device nodes and owners)",
                               "run 'sudo lazyllm images bootstrap' once, or pull a base from a registry")
        tool = _ensure_debootstrap(echo)
        work = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=_scratch()))
        rootfs = work / "rootfs"
        log = state_dir() / "logs" / f"bootstrap-{suite}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            echo(f"debootstrap {suite} from {mirror} (log: {log})")
            with open(log, "w") as out:
                done = subprocess.run([tool, "--variant=minbase", suite, str(rootfs), mirror],
                                      stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                echo(tail)
                raise LazyllmError(f"debootstrap failed (exit {done.returncode}); full log: {log}",
                                   "check that the mirror is reachable, or pass --mirror URL")
            _tidy(rootfs)
            echo(f"importing {ref}")
            _import(client, rootfs, ref, suite, mirror)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ref, True


def _scratch() -> str:
    path = Path(os.environ.get("LAZYLLM_SCRATCH", "/var/tmp"))
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _tidy(rootfs: Path) -> None:
    """apt settings for image builds: no recommends, retries; drop downloaded .debs."""
    conf = rootfs / "etc" / "apt" / "apt.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "90lazyllm").write_text('APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
                                    'Acquire::Retries "3";\n')
    for deb in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()


def _import(client, rootfs: Path, ref: str, suite: str, mirror: str) -> None:
    repository, tag = ref.rsplit(":", 1)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    label_values = engine.labels("base", base="offline", os=f"debian-{DEBIAN_RELEASES.get(suite, suite)}",
                                 suite=suite, arch=os.uname().machine)
    label_values.update({"org.opencontainers.image.created": created,
                         "org.opencontainers.image.title": f"Debian {suite} minbase (lazyllm offline base)",
                         "org.opencontainers.image.source": mirror})
    changes = ["ENV LANG=C.UTF-8", 'CMD ["bash"]']
    changes += [f'LABEL "{k}"="{v}"' for k, v in label_values.items()]
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    try:
        client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag, changes=changes)
    except Exception as exc:
        raise EngineError(f"docker import of {ref} failed: {exc}", "check 'lazyllm doctor' and the disk space") \
            from exc
    finally:
        tar.stdout.close()
        tar.wait()
    if not engine.image_exists(ref):
        raise EngineError(f"docker import did not create {ref}", "check the engine's log")
