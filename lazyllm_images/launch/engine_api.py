"""docker-py ``containers.create(**kwargs)`` (as ``launch.docker`` renders them) -> the Engine API's
``POST /containers/create`` body, without importing docker-py.

docker-py's import costs 0.15 s, a fifth of ``deploy``'s overhead over a bare ``docker run``; the launch path on a
local socket sends this body itself. It is the body docker-py would send for the same kwargs, field for field
(tests/unit/test_launch_engine_api.py compares the two for every golden launch case), so the two paths cannot
drift. Only the keys ``launch.docker`` produces are handled: anything else is a programming error.
"""

from __future__ import annotations

from typing import Any

UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
KNOWN = {"image", "name", "detach", "labels", "environment", "user", "cap_drop", "cap_add", "security_opt",
         "read_only", "init", "ports", "mounts", "tmpfs", "device_requests", "devices", "group_add", "ipc_mode",
         "shm_size", "ulimits", "healthcheck", "network", "working_dir", "stdin_open", "restart_policy",
         "entrypoint", "command"}


def parse_bytes(text: str | int) -> int:
    """``8g`` -> bytes (powers of 1024, as docker-py and the docker CLI read them)."""
    if isinstance(text, int):
        return text
    s = text.strip().lower()
    if len(s) > 1 and s.endswith("b") and s[-2].isalpha():
        s = s[:-1]
    if s and s[-1].isdigit():
        return int(float(s))
    if not s or s[-1] not in UNITS:
        raise ValueError(f"size {text!r}: use a number with b, k, m or g")
    return int(float(s[:-1]) * UNITS[s[-1]])


def _device(text: str) -> dict[str, str]:
    parts = text.split(":")
    return {"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
            "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}


def _device_request(req: dict[str, Any]) -> dict[str, Any]:
    return {"Driver": req.get("driver") or "", "Count": req.get("count") or 0,
            "DeviceIDs": list(req.get("device_ids") or []), "Capabilities": list(req.get("capabilities") or []),
            "Options": dict(req.get("options") or {})}


def _host_config(kw: dict[str, Any]) -> dict[str, Any]:
    hc: dict[str, Any] = {"NetworkMode": kw.get("network") or "default"}
    simple = {"cap_drop": "CapDrop", "cap_add": "CapAdd", "security_opt": "SecurityOpt", "tmpfs": "Tmpfs",
              "ipc_mode": "IpcMode", "restart_policy": "RestartPolicy", "mounts": "Mounts"}
    for key, field in simple.items():
        if kw.get(key):
            hc[field] = kw[key]
    if kw.get("read_only"):
        hc["ReadonlyRootfs"] = True
    if kw.get("init") is not None:
        hc["Init"] = kw["init"]
    if kw.get("ports"):
        hc["PortBindings"] = {key: [{"HostIp": ip or "", "HostPort": "" if port is None else str(port)}]
                              for key, (ip, port) in kw["ports"].items()}
    if kw.get("device_requests"):
        hc["DeviceRequests"] = [_device_request(r) for r in kw["device_requests"]]
    if kw.get("devices"):
        hc["Devices"] = [_device(d) for d in kw["devices"]]
    if kw.get("group_add"):
        hc["GroupAdd"] = [str(g) for g in kw["group_add"]]
    if kw.get("shm_size"):
        hc["ShmSize"] = parse_bytes(kw["shm_size"])
    if kw.get("ulimits"):
        hc["Ulimits"] = [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]} for u in kw["ulimits"]]
    return hc


def _healthcheck(hc: dict[str, Any]) -> dict[str, Any]:
    names = {"test": "Test", "interval": "Interval", "timeout": "Timeout", "retries": "Retries",
             "start_period": "StartPeriod"}
    return {names[k]: v for k, v in hc.items() if v is not None}


def create_body(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(container name, JSON body) for ``POST /containers/create?name=NAME``. Fields docker-py sends as null are
    left out (the engine reads both the same)."""
    unknown = set(kwargs) - KNOWN
    if unknown:
        raise ValueError(f"create_body does not render {sorted(unknown)}")
    kw = kwargs
    stdin = bool(kw.get("stdin_open"))
    body: dict[str, Any] = {
        "Image": kw["image"], "Tty": False, "OpenStdin": stdin, "StdinOnce": stdin, "AttachStdin": stdin,
        "AttachStdout": True, "AttachStderr": True, "NetworkDisabled": False,
        "HostConfig": _host_config(kw),
    }
    if kw.get("command") is not None:
        body["Cmd"] = list(kw["command"])
    if kw.get("entrypoint") is not None:
        body["Entrypoint"] = list(kw["entrypoint"])
    if kw.get("environment"):
        body["Env"] = [f"{k}={v}" for k, v in kw["environment"].items()]
    if kw.get("labels"):
        body["Labels"] = dict(kw["labels"])
    if kw.get("user"):
        body["User"] = kw["user"]
    if kw.get("working_dir"):
        body["WorkingDir"] = kw["working_dir"]
    if kw.get("ports"):
        body["ExposedPorts"] = {key: {} for key in sorted(kw["ports"])}
    if kw.get("healthcheck"):
        body["Healthcheck"] = _healthcheck(kw["healthcheck"])
    # the network: HostConfig.NetworkMode alone, as docker-py's call comes down to (its NetworkingConfig
    # {network: null} is not the Engine API's shape and is ignored); on a user-defined network the container's
    # name resolves without aliases.
    return kw["name"], body
