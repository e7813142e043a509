"""Test recipes for the build tests (imported by name: test modules must not import ``conftest``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# Groups made unique to one test carry this run's mark in their names: the session removes their images at the end
# (the shared tiny-* layers stay cached by content tag, so a later run reuses them).
RUN_MARK = "r" + os.environ.get("LAZYLLM_TEST_RUN", uuid.uuid4().hex)[:8]


def unique_mark() -> str:
    return f"{RUN_MARK}x{uuid.uuid4().hex[:4]}"

# Tiny groups for build tests: real pip installs of small packages from PyPI, on the offline base.
TEST_GROUPS = {
    "tiny-a": {"order": 40, "packages": ["six==1.16.0"], "smoke": {"imports": ["six"]}},
    "tiny-b": {"order": 50, "packages": ["idna==3.10"], "smoke": {"imports": ["idna"]}},
    "tiny-c": {"order": 60, "packages": ["packaging==24.1"], "smoke": {"imports": ["packaging"]}},
    "tiny-torch": {"order": 45, "needs_torch": True, "packages": [], "smoke": {"imports": ["torch"]}},
    "tiny-bad": {"order": 55, "packages": ["lazyllm-no-such-package-xyz==1.0"]},
    "tiny-breaks-torch": {"order": 56, "needs_torch": True, "commands": ["pip uninstall -y torch"]},
}


def write_groups(root: Path, groups: dict) -> None:
    for name, body in groups.items():
        (root / "groups" / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **body}))
