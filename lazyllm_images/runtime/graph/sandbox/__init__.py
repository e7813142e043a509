"""The Code-node sandbox: a worker process serving calls on a unix socket, each in a confined forked child.

- ``LocalWorker``: start a worker subprocess (host runs, tests); ``worker.socket_path``.
- ``SandboxClient(socket_path).call(code, args, kwargs, variables=..., node=..., limits=..., session=...)``.
- ``python -m lazyllm_images.runtime.graph.sandbox --socket PATH``: the worker (sandbox container entry point).
"""

from .client import LocalWorker, SandboxCallError, SandboxClient, SandboxUnavailable
from .confine import Limits

__all__ = ["Limits", "LocalWorker", "SandboxCallError", "SandboxClient", "SandboxUnavailable"]
