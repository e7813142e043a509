"""OpenAI-compatible embedding server on sentence-transformers (and upstream LazyLLM's ``/generate`` shape), or a
reranker when the model is a cross-encoder.

    python -m lazyllm_images.runtime.embed_server --model PATH|pkg:PACKAGE[/SUBDIR]|HUB_ID \
        --served-model-name NAME [--host 0.0.0.0] [--port 8000] [--device auto|cpu|cuda] [--batch-size 32] \
        [--task auto|embed|rerank]

Routes: ``POST /v1/embeddings`` (and ``/embeddings``), ``GET /v1/models``, ``POST /generate``
(body ``{"text": str | [str], "images": []}`` -> the embedding, or a list of them, as JSON); for a reranker
``POST /v1/rerank`` (and ``/rerank``: ``{"query", "documents", "top_n", "return_documents"}`` -> ``results`` of
``index`` and ``relevance_score``, highest first); ``GET /healthz``
(503 while the model loads, 200 after). sentence-transformers is imported when the model loads; the pure
pieces (request validation, batching, model resolution) import only the standard library.
"""
