"""The chat page: a web page that streams replies from an OpenAI-compatible chat completions server.

    python -m lazyllm_images.runtime.chat --upstream URL --model NAME [--title T] [--api-key-file F]
        [--host 0.0.0.0] [--port 8000] [--system-prompt S] [--default-param key=value ...]

The browser talks only to this server: ``GET /`` (the page, static files under ``/static``), ``GET /api/info``
(title, model name, generation defaults), ``POST /api/chat`` (body ``{"messages": [{"role", "content"}...]}``;
answers Server-Sent Events, see ``relay.py``) and ``GET /healthz``. The server adds the system prompt and the
generation defaults, calls ``UPSTREAM/.../chat/completions`` with ``stream: true`` and relays the reply; when the
browser goes away (the stop button) it closes the upstream request. The API key is read from ``--api-key-file``
and sent to the upstream only, as ``Authorization: Bearer``; it never reaches the browser or the logs.
"""
