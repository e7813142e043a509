"""The controller behind ``run infer_service`` and ``run training_service``: work a client asks for over
HTTP, each piece of work a container, its record in SQLite so that a restarted controller finds it again.

    records.py     Record, the statuses, which ones hold GPUs and which are final
    store.py       SQLite: records and the controller's own id, safe across threads and restarts
    tokens.py      the API tokens: read or generated, kept hashed, checked in constant time; a token is an owner
    gpus.py        the devices the controller may hand out, and who holds which
    modelpaths.py  the model roots: what a client may name, and the host path a bind mount needs
    launcher.py    the Launcher protocol the controller drives (prepare, launch, probe, stop, list, logs)
    containers.py  the part of a real launcher shared by every kind: containers found by label, probed, logged
    core.py        Controller: create, get, list, delete, the GPU queue, the poll loop, re-adoption at start
    http.py        what every controller API shares: typed errors, bounded JSON bodies, the token check, SSE logs
    cliargs.py     what every controller's ``__main__`` shares: flags, tokens at start, serving

Standard library plus the runtime extra (starlette, uvicorn, httpx, anyio). Nothing here builds an image: the CLI
builds the stacks before the controller starts; a missing one is a clear refusal.
"""
