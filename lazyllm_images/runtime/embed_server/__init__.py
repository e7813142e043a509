"""OpenAI-compatible embedding server on sentence-transformers (and upstream LazyLLM's ``/generate`` shape).

    python -m lazyllm_images.runtime.embed_server --model PATH|pkg:PACKAGE[/SUBDIR]|HUB_ID \
        --served-model-name NAME [--host 0.0.0.0] [--port 8000] [--device auto|cpu|cuda] [--batch-size 32]

Routes: ``POST /v1/embeddings`` (and ``/embeddings``), ``GET /v1/models``, ``POST /generate``
(body ``{"text": str | [str], "images": []}`` -> the embedding, or a list of them, as JSON), ``GET /healthz``
(503 while the model loads, 200 after). sentence-transformers is imported when the model loads; the pure
pieces (request validation, batching, model resolution) import only the standard library.
"""
