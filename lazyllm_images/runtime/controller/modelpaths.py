"""What a client may name as a model: a folder under the allowed model roots, or a hub id. Nothing else.

Each root is a host folder the operator chose (``--models HOST=INNER``): INNER is where this process sees it (the
controller's container mounts it read-only there), HOST is the path a model container's bind mount needs. A
client names a model by its path under a root (``qwen2-0.5b``), by its full path on either side, or by hub id
(``Qwen/Qwen2-0.5B``, when hub ids are allowed). ``..`` parts, ``~``, absolute paths outside the roots and symlinks
that lead out of their root are refused; refusals never say whether a path outside the roots exists.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"
_HUB = re.compile(rf"^(?:{_HUB_PART}/)?{_HUB_PART}$")
MAX_NAME = 512


class BadModel(ValueError):
    """The model name is refused; ``code`` says which way (outside_roots, not_found, bad_name)."""

    def __init__(self, message: str, code: str = "bad_model") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Root:
    host: str            # on the engine's host: the bind mount's source
    inner: str           # where this process sees it

    @classmethod
    def parse(cls, text: str) -> Root:
        """``HOST=INNER`` or ``PATH`` (the same on both sides: the controller runs on the host)."""
        host, sep, inner = text.partition("=")
        inner = inner if sep else host
        for side in (host, inner):
            if not side.startswith("/"):
                raise ValueError(f"--models {text!r}: paths must be absolute (HOST=INNER or PATH)")
        return cls(posixpath.normpath(host), posixpath.normpath(inner))


@dataclass(frozen=True)
class ModelRef:
    kind: str                 # dir | package | hub
    name: str                 # what the client sent
    inner: str = ""           # dir: the folder as this process sees it (resolved)
    host: str = ""            # dir: the same folder on the engine's host


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class ModelRoots:
    """PACKAGED: whether a name is a model that ships in an image (no hub needed; allowed with hub ids off)."""

    def __init__(self, roots: list[Root], allow_hub: bool = True,
                 packaged: Callable[[str], bool] | None = None) -> None:
        self.roots = list(roots)
        self.allow_hub = allow_hub
        self.packaged = packaged

    def describe(self) -> str:
        return ", ".join(r.host if r.host == r.inner else f"{r.host} (here {r.inner})" for r in self.roots) or "none"

    def resolve(self, name: object) -> ModelRef:
        if not isinstance(name, str) or not name.strip():
            raise BadModel("'model_name' must be a non-empty string", "bad_name")
        text = name.strip()
        if len(text) > MAX_NAME or any(ord(c) < 32 or c == "\\" for c in text):
            raise BadModel("'model_name' has control characters, backslashes or is too long", "bad_name")
        parts = text.split("/")
        if ".." in parts or text.startswith("~"):
            raise BadModel(f"model {text!r}: '..' and '~' are not allowed; name a folder under the model roots "
                           f"({self.describe()})", "outside_roots")
        if text.startswith("/"):
            return self._absolute(text)
        for root in self.roots:
            found = self._under(root, posixpath.normpath(text), text)
            if found is not None:
                return found
        if self.packaged is not None and self.packaged(text):
            return ModelRef("package", text)
        if self.allow_hub and _HUB.match(text) and "--" not in text and ".." not in text:
            return ModelRef("hub", text)
        where = f"under the model roots ({self.describe()})"
        if not self.allow_hub:
            raise BadModel(f"model {text!r} is not a folder {where}, and hub ids are turned off", "model_not_found")
        raise BadModel(f"model {text!r} is not a folder {where} nor a hub id (ORG/NAME)", "model_not_found")

    def _absolute(self, text: str) -> ModelRef:
        path = posixpath.normpath(text)
        for root in self.roots:
            for side in (root.inner, root.host):
                if path == side:
                    raise BadModel(f"model {text!r}: name a model folder under a root, not the root itself",
                                   "bad_name")
                if _inside(path, side):
                    found = self._under(root, posixpath.relpath(path, side), text)
                    if found is None:
                        raise BadModel(f"model folder {text!r} does not exist under {side}", "model_not_found")
                    return found
        raise BadModel(f"model {text!r} is outside the allowed model roots ({self.describe()})", "outside_roots")

    def _under(self, root: Root, rel: str, text: str) -> ModelRef | None:
        """The folder REL under ROOT as a ModelRef, None when it is not a folder there; a symlink that leads out
        of the root is refused."""
        if rel in ("", ".") or rel.startswith("/"):
            raise BadModel(f"model {text!r}: name a model folder under a root, not the root itself",
                           "bad_name")
        candidate = posixpath.join(root.inner, rel)
        if not os.path.lexists(candidate):
            return None
        real_root = os.path.realpath(root.inner)
        real = os.path.realpath(candidate)
        if not _inside(real, real_root) or real == real_root:
            raise BadModel(f"model {text!r} is a link that leads outside its model root {root.inner}",
                           "outside_roots")
        if not os.path.isdir(real):
            raise BadModel(f"model {text!r} is not a folder", "model_not_found")
        host = posixpath.join(root.host, posixpath.relpath(real, real_root))
        return ModelRef("dir", text, inner=real, host=host)
