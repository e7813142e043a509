"""The MCP bridge: serve a stdio MCP server over legacy SSE (``/sse``) and streamable HTTP (``/mcp``).

    python -m lazyllm_images.runtime.mcp_bridge [--host H] [--port P] [--allowed-host HOST[:PORT]|'*' ...]
        [--allow-origin ORIGIN ...] [--auth-token-file F] [--secrets-stdin] [--pass-environment] [--isolate]
        [--restart no|on-failure] [--idle-timeout SECONDS] [--max-body-bytes N] [--url-file F] [--log-level L]
        -- COMMAND [ARGS...]

Modules: ``main`` (entry point), ``config`` (argv, stdin secrets), ``redact`` (secrets out of every output),
``security`` (Host/Origin allow lists, token, body limit), ``child`` (the process and its group), ``hub`` (one
child, many sessions: JSON-RPC multiplexing), ``jsonrpc`` (messages the bridge writes, routing rules),
``supervisor`` (restart with backoff), ``session`` (one client session), ``mailbox`` (the hot-path queue),
``wire`` (ASGI framing both transports share), ``sse_transport`` (legacy SSE), ``http_transport`` (streamable
HTTP: plain JSON answers, an event stream only when a call has more to say) with ``http_outlet`` (which response
each message goes out on), ``app`` (routes), ``bridge`` (shared or isolated children, health), ``server`` (bind,
serve, signals).
"""
