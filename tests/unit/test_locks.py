"""Locks that every user of one engine shares: installs build side by side, prune waits for them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from lazyllm_images import locks

HOLD = """
import sys, time
from lazyllm_images.locks import named_lock
with named_lock(sys.argv[1], shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(name: str, how: str, seconds: float, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, name, how, str(seconds)], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_folder_follows_the_engine_not_the_user_state(monkeypatch, tmp_path):
    monkeypatch.delenv("LAZYLLM_LOCK_DIR", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "one"))
    first = locks.lock_dir()
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "two"))
    assert locks.lock_dir() == first
    link = tmp_path / "docker.sock"
    link.symlink_to("/var/run/docker.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{link}")
    assert locks.lock_dir() == first, "the same engine through another path"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other/docker.sock")
    assert locks.lock_dir() != first


def test_lock_files_are_usable_by_other_users(monkeypatch, tmp_path):
    monkeypatch.setenv("LAZYLLM_LOCK_DIR", str(tmp_path / "locks"))
    with locks.named_lock("layer:x"):
        pass
    folder = tmp_path / "locks"
    assert folder.stat().st_mode & 0o1777 == 0o1777
    assert all(p.stat().st_mode & 0o666 == 0o666 for p in folder.iterdir())


def test_installs_share_the_images_lock_and_prune_waits_for_them(monkeypatch, tmp_path):
    monkeypatch.setenv("LAZYLLM_LOCK_DIR", str(tmp_path / "locks"))
    env = {**os.environ, "LAZYLLM_LOCK_DIR": str(tmp_path / "locks")}
    install = hold(locks.IMAGES, "shared", 1.5, env)
    try:
        second = threading.Event()
        with locks.named_lock(locks.IMAGES, shared=True, on_wait=second.set):   # another install: no wait
            assert not second.is_set() and install.poll() is None
        waited = threading.Event()
        with locks.named_lock(locks.IMAGES, on_wait=waited.set):    # prune: waits until the install is done
            assert waited.is_set() and install.wait(5) == 0
    finally:
        install.wait(10)
