"""OpenAI-compatible embedding server on sentence-transformers (and upstream LazyLLM's ``/generate`` shape), or a
reranker when the model is a cross-encoder.

    python -m lazyllm_images.runtime.embed_server --model PATH|pkg:PACKAGE[/SUBDIR]|HUB_ID \
        --served-model-name NAME [--host 0.0.0.0] [--port 8000] [--device auto|cpu|cuda] [--batch-size 32] \
        [--task auto|embed|rerank] [--dtype auto|fp32|bf16|int8]

Routes: ``POST /v1/embeddings`` (and ``/embeddings``), ``GET /v1/models``, ``POST /generate``
(body ``{"text": str | [str], "images": []}`` -> the embedding, or a list of them, as JSON); for a reranker
``POST /v1/rerank`` (and ``/rerank``: ``{"query", "documents", "top_n", "return_documents"}`` -> ``results`` of
``index`` and ``relevance_score``, highest first); ``GET /healthz``
(503 while the model loads, 200 after). sentence-transformers is imported when the model loads; the pure
pieces (request validation, batching, model resolution, the ``--dtype`` choice) import only the standard library.
``--dtype auto`` (the default) measures the CPU modes at start-up and keeps the fastest whose vectors stay within
cosine 0.99 of fp32's (``dtype.py``); ``GET /v1/models`` shows the mode and the measurements (``dtype``,
``dtype_choice``).
"""
