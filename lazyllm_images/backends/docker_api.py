"""Create, start, watch and remove containers over the local Engine API socket, without docker-py's import.

The launch path of a container that takes no secrets on stdin (a hijacked attach stays with docker-py) and the
lookups around it: what ``deploy`` does between planning and "healthy". These calls speak the engine's negotiated
API version (``engine.call``) and report their own failures; None means only "no local socket" (DOCKER_HOST is
tcp:// or ssh://), where the caller uses docker-py.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from .. import engine
from ..errors import EngineError, LaunchError
from ..launch.engine_api import create_body


class LocalContainer:
    """The part of docker-py's ``Container`` the launcher uses; streaming logs go through docker-py."""

    def __init__(self, cid: str, name: str) -> None:
        self.id, self.name, self.attrs = cid, name, {}

    def reload(self) -> None:
        status, data = engine.local_call("GET", f"/containers/{self.id}/json")
        if status != 200:
            raise LaunchError(f"the engine no longer knows container {self.name}: {engine.message(data)}",
                              "'lazyllm doctor' checks the host")
        self.attrs = data or {}

    def remove(self, force: bool = False) -> None:
        engine.call("DELETE", f"/containers/{self.id}?{urlencode({'force': int(force)})}", ok=(204, 404))

    def logs(self, **kwargs):
        return engine.client().containers.get(self.id).logs(**kwargs)


def create_and_start(kwargs: dict) -> LocalContainer | None:
    """``containers.create(**kwargs)`` then start; None when there is no local socket to do it on. A create the
    engine did not answer in time may still have happened: the name is removed before the error goes on, so
    nothing is orphaned and no second create under the same name is tried."""
    name, body = create_body(kwargs)
    try:
        done = engine.local_call("POST", f"/containers/create?{urlencode({'name': name})}", body)
    except engine.EngineTimeout:
        _remove_name(name)
        raise
    if done is None:
        return None
    status, data = done
    if status == 404 and "no such image" in engine.message(data).lower():
        raise LaunchError(f"image {kwargs['image']} is not here", "run 'lazyllm install' first")
    if status != 201:
        raise LaunchError(f"the engine refused container {name}: {engine.message(data)}",
                          "'lazyllm doctor' checks the host")
    container = LocalContainer(data["Id"], name)
    try:
        started = engine.local_call("POST", f"/containers/{quote(container.id)}/start")
    except BaseException:                       # a timeout or a Ctrl-C: the container must not stay behind
        _remove_name(name)
        raise
    if started[0] not in (204, 304):
        container.remove(force=True)
        raise LaunchError(f"container {name} did not start: {engine.message(started[1])}",
                          "another process may hold the port: choose another with --port")
    return container


def _remove_name(name: str, settle: float = 2.0) -> None:
    """Remove the container of that name, if any, after a call whose outcome is unknown: the create may complete
    only after our request gave up, so look again for ``settle`` seconds (with a wait of its own, not the one that
    just ran out)."""
    import time
    deadline = time.monotonic() + settle
    while True:
        try:
            engine.local_call("DELETE", f"/containers/{quote(name)}?force=1", wait=max(engine.timeout(), 30))
        except EngineError:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)


def labelled_containers(filters: dict) -> list[dict] | None:
    """``GET /containers/json?all=1&filters=...``: the containers' summaries; None without a local socket."""
    done = engine.call("GET", f"/containers/json?{urlencode({'all': 1, 'filters': json.dumps(filters)})}")
    return None if done is None else done[1]


def network_names(name: str) -> list[str] | None:
    done = engine.call("GET", f"/networks?{urlencode({'filters': json.dumps({'name': [name]})})}")
    return None if done is None else [n.get("Name") for n in done[1]]


def create_network(name: str, labels: dict[str, str]) -> bool:
    """True when made; False when it already exists (made meanwhile by another command) or without a local
    socket."""
    done = engine.call("POST", "/networks/create", {"Name": name, "Driver": "bridge", "Labels": labels,
                                                    "CheckDuplicate": True}, ok=(201, 409))
    return done is not None and done[0] == 201
