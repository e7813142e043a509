"""Engine tests need a real Docker engine ('make test' starts one) and the offline base."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_helpers import REPO, RUN_MARK, TEST_GROUPS, write_groups


@pytest.fixture(scope="session")
def docker_client():
    import docker
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # fail loudly: CI must never skip the engine tests silently
        pytest.fail(f"no Docker engine answers ({exc}); run 'make engine' first")
    return client


@pytest.fixture(scope="session", autouse=True)
def _remove_this_runs_images(docker_client):
    """Images of groups unique to this run (named with RUN_MARK) go at the end, newest first (children first)."""
    yield
    import docker
    mine = [i for i in docker_client.images.list() if any(RUN_MARK in t for t in i.tags)]
    for image in sorted(mine, key=lambda i: i.attrs["Created"], reverse=True):
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="session")
def offline_base(docker_client):
    from lazyllm_images.bootstrap import bootstrap_base
    ref, _ = bootstrap_base(echo=lambda s: None)
    return ref


@pytest.fixture(scope="session")
def test_recipes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipes") / "recipes"
    shutil.copytree(REPO / "recipes", root)
    write_groups(root, TEST_GROUPS)
    return root


class Lazyllm:
    """Runs the real CLI in a subprocess with the test recipes, the offline base and a private lock file."""

    def __init__(self, recipes: Path, workdir: Path):
        self.recipes, self.workdir = recipes, workdir
        self.env = {**os.environ, "LAZYLLM_RECIPES": str(recipes), "LAZYLLM_BASE": "offline",
                    "LAZYLLM_LOCK_FILE": str(workdir / "lazyllm.lock"), "COLUMNS": "200"}

    def argv(self, *args) -> list[str]:
        return [sys.executable, "-m", "lazyllm_images", *args]

    def __call__(self, *args, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=self.workdir,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def popen(self, *args, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=self.workdir, env={**self.env, **(env or {})}, start_new_session=True)

    def plan(self, *items, extra=()) -> dict:
        import json
        out = self("install", *items, "--dry-run", "--json", *extra)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def lazyllm(test_recipes, tmp_path, offline_base) -> Lazyllm:
    return Lazyllm(test_recipes, tmp_path)
