"""What runs inside the images (and on the host with ``--no-container``).

Conventions every runtime module follows:
- runnable as ``python -m lazyllm_images.runtime.<name> [options]``; binds ``--host``/``--port`` from its
  arguments, logs to stdout/stderr, and serves ``GET /healthz`` (200 when ready, 503 otherwise);
- imports nothing from ``lazyllm_images`` outside ``lazyllm_images.runtime``: the image's runtime layer carries
  only ``lazyllm_images/__init__.py`` and this folder;
- depends on the ``runtime`` extra (mcp, starlette, uvicorn, httpx, numpy, pypdf, python-docx) plus the heavy
  libraries of its own layer (sentence-transformers for the embedding server), imported where used;
- secrets never arrive on the command line or in the container's environment: they come on stdin or from
  files the launcher names (see each module).
"""
