"""The real launcher: each inference service is the model-server unit ``lazyllm deploy`` launches
(``services.deploy.model_server``: framework choice, GPU flags, hardened defaults, hub settings), started on the
local engine through ``backends.docker``, with the controller's labels.

What it adds to ``deploy``, and nothing more:
- the model is a folder the controller resolved under its roots (the path it sees, with the bind mount's source
  swapped for the HOST path: the controller may run in a container that sees the roots elsewhere), a packaged
  model or a hub id;
- the GPUs are the device indexes the controller assigned (``--gpus device=N,...``), or none;
- the host port is chosen here so the endpoint is known before the start; the controller polls health itself
  (``health_url``: the published port, or the container's name on ``--engine-network`` when the controller runs
  in a container on that network);
- it never builds: a framework whose stack is missing is refused (409) before anything is stored.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..controller.containers import ContainerLauncher
from ..controller.launcher import Refused
from ..controller.records import Record
from ..netaddr import format_host, is_wildcard
from .request import DEPLOY_METHOD

log = logging.getLogger("lazyllm.infer")
SERVED_NAME = "lazyllm"          # the name upstream's OpenAI client sends (model="lazyllm")
PORT_TRIES = 3


def gpus_arg(record: Record, devices: list[int] | None) -> str:
    if not record.gpus:
        return "none"
    if devices is None:                         # prepare: the count; launch: the devices it was given
        return str(record.gpus)
    return ",".join(str(d) for d in devices) if len(devices) > 1 else f"device={devices[0]}"


class ModelServerLauncher(ContainerLauncher):
    def __init__(self, instance: str, *, publish_host: str = "127.0.0.1", endpoint_host: str | None = None,
                 network: str | None = None, build=None) -> None:
        super().__init__(instance)
        self.build = build                      # requests.BuildOptions the stacks were built with (None: defaults)
        self.publish_host = publish_host
        self.endpoint_host = endpoint_host or ("127.0.0.1" if is_wildcard(publish_host) else publish_host)
        self.network = network

    # ------------------------------------------------------------------ what to start
    def model_server(self, record: Record, port: int | None, devices: list[int] | None):
        from ...requests import DeployModelRequest, LaunchOptions
        from ...services import deploy
        spec = record.spec
        model = spec["model_inner"] if spec["model_kind"] == "dir" else spec["model"]
        launch = LaunchOptions(host=self.publish_host, port=port, gpus=gpus_arg(record, devices),
                               name=record.unit_name)
        framework = record.facts.get("framework") or spec["framework"]      # what prepare chose for auto
        request = DeployModelRequest(model=model, framework=framework, launch=launch,
                                     **({"build": self.build} if self.build is not None else {}))
        # served under the name upstream's clients send (model="lazyllm")
        return deploy.model_server(request, record.unit_name, served_name=SERVED_NAME)

    @staticmethod
    def check_source(record: Record, m) -> None:
        """``deploy`` resolved the model as the controller did: a name the controller took for a hub id or a
        packaged model must not turn into a folder (``resolve_model`` also looks in its working directory)."""
        spec, source = record.spec, m.source
        if source.kind == "dir":
            same = spec["model_kind"] == "dir" and source.host_path == spec["model_inner"]
        else:                                   # a hub-shaped name may be a packaged model: in the image, fine
            same = spec["model_kind"] in ("hub", "package")
        if not same:
            raise Refused(f"model {spec['model']!r} is not a folder under the model roots nor a hub id",
                          "outside_roots", 400)

    def describe(self, record: Record, port: int, devices: list[int]):
        """(the one-unit Service, the ModelServer, the handle) for RECORD on host PORT with DEVICES."""
        from ...backends.docker import url
        from ...launch.unit import Service
        from ...services.start import gpu_mode
        m = self.model_server(record, port, devices)
        self.check_source(record, m)
        spec = m.spec
        if record.spec["model_kind"] == "dir":            # the bind mount's source is a path on the engine's host
            spec = replace(spec, mounts=tuple(replace(mt, source=record.spec["model_host"])
                                              if mt.kind == "bind" and mt.purpose == "model" else mt
                                              for mt in spec.mounts))
        if self.network:
            spec = replace(spec, network=self.network)
        health = spec.healthcheck.path if spec.healthcheck else "/"
        published = spec.ports[0]
        health_url = (f"http://{spec.name}:{published.container_port}{health}" if self.network
                      else url(published, health))
        handle = {"service": record.unit_name, "container": spec.name, "health_url": health_url,
                  "endpoint": f"http://{format_host(self.endpoint_host)}:{port}{m.server.api_base.rstrip('/')}/",
                  "port": port}
        spec = replace(spec, labels={**spec.labels, **self.labels(record, handle)})
        unit = replace(m.unit, spec=spec)
        return Service(record.unit_name, (unit,), gpu_mode([unit])), m, handle

    # ------------------------------------------------------------------ the protocol
    def prepare(self, record: Record) -> dict:
        from ... import engine
        from ...errors import EngineError, LazyllmError
        try:
            m = self.model_server(record, None, None)
            self.check_source(record, m)
            present = engine.image_exists(m.plan.top.ref)
        except EngineError as exc:
            raise Refused(f"the engine does not answer: {exc.message}", "engine_unavailable", 503) from None
        except LazyllmError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            raise Refused(f"{exc.message}{hint}", "cannot_launch", 400) from None
        if not present:
            raise Refused(f"the {m.framework} stack is not built on this host (image {m.plan.top.ref}); the "
                          f"operator names it at start: 'lazyllm run infer_service --frameworks {m.framework}'", "stack_missing", 409)
        return {"framework": m.framework, "why": m.why, "deploy_method": DEPLOY_METHOD.get(m.framework, ""),
                "served_name": m.server.served_name, "api_base": m.server.api_base, "api_kind": m.server.api_kind,
                "kind": m.kind}

    def launch(self, record: Record) -> dict:
        from ...backends.docker import free_port
        from ...errors import LaunchError
        for attempt in range(PORT_TRIES):
            service, _, handle = self.describe(record, free_port(self.publish_host), record.devices)
            try:
                self.start_service(service)
                return handle
            except LaunchError as exc:
                taken = "port is already allocated" in str(exc) or "address already in use" in str(exc)
                if not taken or attempt == PORT_TRIES - 1:
                    raise
                log.info("port %s was taken on the host; trying another", handle["port"])
        raise AssertionError("unreachable")
