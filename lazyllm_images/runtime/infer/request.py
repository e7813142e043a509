"""A create request, mapped: the only things a client can ask of the engine are a model (a folder under the model
roots or a hub id), a framework from the allowed list and a GPU count. Fields that look like container settings
(an image, mounts, devices, privileges, env, a command...) are refused, never passed on; other unknown fields are
ignored, as upstream's server ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..controller.core import ApiError
from ..controller.modelpaths import BadModel, ModelRef, ModelRoots

FIELDS = ("service_name", "model_name", "framework", "num_gpus")
DEFAULT_FRAMEWORKS = ("auto", "vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding")
ALIASES = {"autodeploy": "auto", "embeddingdeploy": "embedding", "vllmcpu": "vllm-cpu"}    # upstream class names
DEPLOY_METHOD = {"vllm": "Vllm", "vllm-cpu": "Vllm", "lightllm": "Lightllm", "lmdeploy": "LMDeploy",
                 "infinity": "Infinity", "embedding": "Infinity", "mindie": "Mindie"}
MAX_GPUS = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_CONTAINER_WORDS = re.compile(
    r"image|mount|volume|bind|privileg|cap_?add|capabilit|device|env|command|cmd|entrypoint|network|user|port|"
    r"security|seccomp|apparmor|docker|runtime|ipc|pid|shm|ulimit|label|sysctl|tmpfs|workdir|args|flags|options",
    re.IGNORECASE)


@dataclass(frozen=True)
class InferRequest:
    name: str
    model: ModelRef
    framework: str            # asked for (auto allowed); the launcher's prepare says what auto chose
    gpus: int

    def spec(self) -> dict:
        """What the record keeps: mapped values only."""
        return {"model": self.model.name, "model_kind": self.model.kind, "model_inner": self.model.inner,
                "model_host": self.model.host, "framework": self.framework, "num_gpus": self.gpus}


def framework_name(value: object, allowed: tuple[str, ...]) -> str:
    if value is None:
        return "auto"
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "unknown_framework", "'framework' must be a string, e.g. \"auto\" or \"vllm\"")
    key = value.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in allowed:
        raise ApiError(400, "unknown_framework", f"framework {value!r} is not one this service runs "
                                                 f"(allowed: {', '.join(allowed)})")
    return key


def gpu_count(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GPUS:
        raise ApiError(400, "bad_num_gpus", f"'num_gpus' must be a whole number from 0 to {MAX_GPUS}")
    return value


def gpu_need(framework: str) -> str:
    """required | optional | none, from the framework's adapter (auto: what its choice needs, decided later)."""
    if framework == "auto":
        return "optional"
    from ...frameworks import get
    return get(framework).needs.gpu


def refuse_container_fields(body: dict, fields: tuple[str, ...] = FIELDS) -> None:
    """Fields that look like container settings are a 400 (the training service shares this rule)."""
    asked = sorted(k for k in body if k not in fields and _CONTAINER_WORDS.search(str(k)))
    if asked:
        raise ApiError(400, "field_not_allowed",
                       f"{', '.join(repr(k) for k in asked)}: this API does not take container settings (images, "
                       f"mounts, devices, privileges, environment, commands); it takes only {', '.join(fields)}")


def parse_create(body: dict, roots: ModelRoots, allowed: tuple[str, ...], host_gpus: int) -> InferRequest:
    refuse_container_fields(body)
    name = body.get("service_name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing_field", "'service_name' is required (a string)")
    if not _NAME.match(name):
        raise ApiError(400, "bad_service_name", "'service_name' takes 1-63 letters, digits, '_', '.' and '-', "
                                                "starting with a letter or digit")
    if "model_name" not in body:
        raise ApiError(400, "missing_field", "'model_name' is required")
    framework = framework_name(body.get("framework"), allowed)
    try:
        model = roots.resolve(body.get("model_name"))
    except BadModel as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    gpus = gpu_count(body.get("num_gpus"), 1 if host_gpus else 0)
    if gpu_need(framework) == "none":
        gpus = 0                                # a CPU framework: upstream's clients send num_gpus anyway
    return InferRequest(name, model, framework, gpus)
