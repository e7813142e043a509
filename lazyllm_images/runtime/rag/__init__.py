"""The RAG service that runs inside an image: ``python -m lazyllm_images.runtime.rag --documents DIR ...``.

Modules, in the order data flows through them:
- ``loaders``: files under the documents root -> plain text (txt, md, html, pdf, docx);
- ``chunking``: text -> sentence-aware chunks with overlap, ids stable for unchanged text;
- ``embeddings``: an OpenAI-compatible ``/v1/embeddings`` client that counts its calls;
- ``store``: the sqlite index in ``--index`` (files, chunks, vectors) and its in-memory snapshot;
- ``indexer``: incremental passes (added, changed, removed files); ``progress``: counts and percentage;
  ``watch``: the background loop (a pass at start, on a poll interval, on ``POST /v1/reindex``);
- ``bm25``, ``retrieve``, ``rerank``: hybrid retrieval (cosine + BM25, reciprocal rank fusion, optional reranker);
- ``generate``: the prompt with numbered passages and the OpenAI-compatible LLM client;
- ``api_models``: request validation; ``app``: the HTTP API (Starlette); ``__main__``: the command line.
"""
