"""Shared test set-up: markers by folder, a label for everything a test run launches, cleanup by that label."""

from __future__ import annotations

import os
import uuid

import pytest

RUN_ID = os.environ.setdefault("LAZYLLM_TEST_RUN", uuid.uuid4().hex[:12])
# Containers, volumes and networks launched by the tool during tests carry this label (images do not: they are
# content-addressed and shared between runs).
os.environ.setdefault("LAZYLLM_LABELS", f"org.lazyllm.test-run={RUN_ID}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        for kind in ("unit", "host", "engine", "e2e"):
            if f"{os.sep}tests{os.sep}{kind}{os.sep}" in path:
                item.add_marker(getattr(pytest.mark, kind))


def _cleanup_run() -> None:
    try:
        import docker
        client = docker.from_env()
        client.ping()
    except Exception:
        return
    flt = {"label": [f"org.lazyllm.test-run={RUN_ID}"]}
    for c in client.containers.list(all=True, filters=flt):
        try:
            c.remove(force=True)
        except Exception:
            pass
    for n in client.networks.list(filters=flt):
        try:
            n.remove()
        except Exception:
            pass
    for v in client.volumes.list(filters=flt):
        try:
            v.remove(force=True)
        except Exception:
            pass


def pytest_sessionfinish(session, exitstatus):
    _cleanup_run()
