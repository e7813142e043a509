"""Create, start, watch and remove containers over the local Engine API socket, without docker-py's import.

The launch path of a container that takes no secrets on stdin (a hijacked attach stays with docker-py) and the
lookups around it: what ``deploy`` does between planning and "healthy". Anything unusual (no local socket, the
engine not answering) returns None, and the caller takes the docker-py path, which explains the failure.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from .. import engine
from ..errors import LaunchError
from ..launch.engine_api import create_body


def _message(data: object) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"]).strip()
    return "no reason given"


class LocalContainer:
    """The part of docker-py's ``Container`` the launcher uses; streaming logs go through docker-py."""

    def __init__(self, cid: str, name: str) -> None:
        self.id, self.name, self.attrs = cid, name, {}

    def reload(self) -> None:
        done = engine.local_call("GET", f"/containers/{self.id}/json")
        if done is None or done[0] != 200:
            raise LaunchError(f"the engine no longer knows container {self.name}: {_message(done and done[1])}",
                              "'lazyllm doctor' checks the host")
        self.attrs = done[1] or {}

    def remove(self, force: bool = False) -> None:
        done = engine.local_call("DELETE", f"/containers/{self.id}?{urlencode({'force': int(force)})}")
        if done is None or done[0] not in (204, 404):
            engine.client().containers.get(self.id).remove(force=force)

    def logs(self, **kwargs):
        return engine.client().containers.get(self.id).logs(**kwargs)


def create_and_start(kwargs: dict) -> LocalContainer | None:
    """``containers.create(**kwargs)`` then start; None when there is no local socket to do it on."""
    name, body = create_body(kwargs)
    done = engine.local_call("POST", f"/containers/create?{urlencode({'name': name})}", body)
    if done is None:
        return None
    status, data = done
    if status == 404 and "no such image" in _message(data).lower():
        raise LaunchError(f"image {kwargs['image']} is not here", "run 'lazyllm install' first")
    if status != 201:
        raise LaunchError(f"the engine refused container {name}: {_message(data)}", "'lazyllm doctor' checks the host")
    container = LocalContainer(data["Id"], name)
    started = engine.local_call("POST", f"/containers/{quote(container.id)}/start")
    if started is None or started[0] not in (204, 304):
        container.remove(force=True)
        raise LaunchError(f"container {name} did not start: {_message(started and started[1])}",
                          "another process may hold the port: choose another with --port")
    return container


def labelled_containers(filters: dict) -> list[dict] | None:
    """``GET /containers/json?all=1&filters=...``: the containers' summaries; None without a local socket."""
    done = engine.local_call("GET", f"/containers/json?{urlencode({'all': 1, 'filters': json.dumps(filters)})}")
    return done[1] if done is not None and done[0] == 200 else None


def network_names(name: str) -> list[str] | None:
    done = engine.local_call("GET", f"/networks?{urlencode({'filters': json.dumps({'name': [name]})})}")
    return [n.get("Name") for n in done[1]] if done is not None and done[0] == 200 else None


def create_network(name: str, labels: dict[str, str]) -> bool:
    done = engine.local_call("POST", "/networks/create", {"Name": name, "Driver": "bridge", "Labels": labels,
                                                          "CheckDuplicate": True})
    return done is not None and done[0] == 201
