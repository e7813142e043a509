"""Who may talk to the bridge, and what it never shows: DNS-rebinding checks (Host 421, Origin 403) on both
transports, bearer token (401, /healthz open), CORS only when asked, body limit (413), secrets only in the child,
redacted from every log line and absent from the bridge's command line and environment; a fixed port binds."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from lazyllm_images.runtime.netaddr import format_host, is_loopback, local_addresses, local_names
from test_mcp_harness import (BRIDGE, FIXTURE_CMD, ROOT, TIME_CMD, TRANSPORTS, BridgeProcess, connect, run, text,
                              wait_for)

TOKEN = "tok-7f3a9c-bridge-test"
SECRET = "s3cr3t-value-9b2e71"
APP_ORIGIN = "http://app.example:3000"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def secure() -> Iterator[BridgeProcess]:
    """Token and -e secret via stdin, CORS for one origin, a proxy host allowed, a small body limit, debug logs."""
    options = ["--allow-origin", APP_ORIGIN, "--allowed-host", "proxy.example:*", "--max-body-bytes", "4096",
               "--log-level", "debug"]
    with BridgeProcess(FIXTURE_CMD, *options, secrets={"env": {"FIXTURE_SECRET": SECRET},
                                                       "auth_token": TOKEN}) as bridge:
        yield bridge


def post(bridge: BridgeProcess, path: str = "/mcp", token: str | None = TOKEN, body: object = INIT,
         **headers: str) -> httpx.Response:
    hdrs = {"accept": ACCEPT, "content-type": "application/json", **headers}
    if token:
        hdrs["authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=10) as client:
        return client.post(f"{bridge.base}{path}", json=body, headers=hdrs)


def get_sse(bridge: BridgeProcess, token: str | None = TOKEN, **headers: str) -> tuple[int, str]:
    """Open GET /sse and read only its first event (the endpoint), then hang up."""
    hdrs = {**headers, **({"authorization": f"Bearer {token}"} if token else {})}
    with httpx.Client(timeout=10) as client, client.stream("GET", f"{bridge.base}/sse", headers=hdrs) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.text
        for line in r.iter_lines():
            if line.startswith("data: "):
                return 200, line[len("data: "):]
    return r.status_code, ""


def test_token_required_everywhere_but_healthz(secure: BridgeProcess) -> None:
    assert secure.health()[0] == 200
    assert post(secure, token=None).status_code == 401
    assert post(secure, token="wrong-token").status_code == 401
    assert get_sse(secure, token=None)[0] == 401
    assert post(secure, "/messages/?session_id=" + "0" * 32, token=None).status_code == 401
    assert post(secure).status_code == 200


def test_spoofed_host_gets_421_on_both_transports(secure: BridgeProcess) -> None:
    evil = {"host": "attacker.example:80"}
    assert post(secure, **evil).status_code == 421
    assert get_sse(secure, **evil)[0] == 421
    assert post(secure, "/messages/?session_id=" + "0" * 32, **evil).status_code == 421
    assert httpx.get(f"{secure.base}/healthz", headers=evil).status_code == 421
    assert post(secure, host=f"localhost:{secure.port}").status_code == 200
    assert post(secure, host="proxy.example:443").status_code == 200       # --allowed-host proxy.example:*


def test_foreign_origin_gets_403_on_both_transports(secure: BridgeProcess) -> None:
    assert post(secure, origin="http://attacker.example").status_code == 403
    assert get_sse(secure, origin="http://attacker.example")[0] == 403
    assert post(secure, origin=f"http://127.0.0.1:{secure.port}").status_code == 200    # same origin
    assert post(secure, origin=APP_ORIGIN).status_code == 200


def test_cors_preflight_with_allow_origin(secure: BridgeProcess) -> None:
    preflight = httpx.options(f"{secure.base}/mcp", headers={
        "origin": APP_ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, mcp-session-id"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "access-control-allow-credentials" not in preflight.headers
    actual = post(secure, origin=APP_ORIGIN)
    assert actual.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "mcp-session-id" in actual.headers["access-control-expose-headers"].lower()
    foreign = httpx.options(f"{secure.base}/mcp", headers={"origin": "http://attacker.example",
                                                           "access-control-request-method": "POST"})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


def test_oversize_bodies_get_413_on_both_transports(secure: BridgeProcess) -> None:
    big = {**INIT, "params": {**INIT["params"], "pad": "x" * 5000}}        # type: ignore[dict-item]
    assert post(secure, body=big).status_code == 413
    status, endpoint = get_sse(secure)
    assert status == 200 and endpoint.startswith("/messages/?session_id=")
    assert post(secure, endpoint, body=big).status_code == 413

    def chunked() -> Iterator[bytes]:
        yield json.dumps(big).encode()
    with httpx.Client(timeout=10) as client:
        r = client.post(f"{secure.base}/mcp", content=chunked(), headers={
            "authorization": f"Bearer {TOKEN}", "content-type": "application/json", "accept": ACCEPT})
    assert r.status_code == 413


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_secret_reaches_only_the_child(secure: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        async with connect(secure, transport, token=TOKEN) as s:
            assert text(await s.call_tool("env", {"name": "FIXTURE_SECRET"})) == SECRET
            assert text(await s.call_tool("stderr", {"text": f"child says {SECRET}"})) == "written"
            assert text(await s.call_tool("echo", {"text": SECRET})) == SECRET
    run(check())
    assert wait_for(lambda: "child says ***" in secure.stderr(), 5)   # the child's stderr, relayed and redacted
    logs = secure.stderr()
    assert SECRET not in logs and TOKEN not in logs
    with open(f"/proc/{secure.pid}/cmdline", "rb") as fh:
        cmdline = fh.read()
    with open(f"/proc/{secure.pid}/environ", "rb") as fh:
        environ = fh.read()
    assert SECRET.encode() not in cmdline + environ and TOKEN.encode() not in cmdline + environ
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert SECRET not in ps and TOKEN not in ps


def test_no_cors_without_allow_origin_and_fixed_port() -> None:
    """Without --allow-origin there is no CORS at all; --port P binds exactly P (mcp-proxy ignores it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with BridgeProcess(TIME_CMD, port=port) as bridge:
        assert bridge.port == port and f"127.0.0.1:{port}/sse" in bridge.line
        foreign = httpx.options(f"{bridge.base}/mcp", headers={"origin": APP_ORIGIN,
                                                               "access-control-request-method": "POST"})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
        same = httpx.options(f"{bridge.base}/mcp", headers={"origin": f"http://127.0.0.1:{port}",
                                                            "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in same.headers
        assert post(bridge, token=None).status_code == 200               # no token configured: open

        async def call() -> None:
            async with connect(bridge, "sse") as s:
                assert not (await s.call_tool("get_current_time", {"timezone": "UTC"})).isError
        run(call())


def test_loud_warning_for_a_non_loopback_bind_without_token() -> None:
    done = subprocess.run([*BRIDGE, "--host", "0.0.0.0", "--", "no-such-mcp-server-xyz"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert "WARNING: the MCP bridge listens on 0.0.0.0" in done.stderr and done.returncode == 1


def non_loopback_addresses() -> list[str]:
    found = [a for a in local_addresses() if not is_loopback(a)]
    if not found:
        pytest.skip("this host has no address but loopback")
    return found


def test_a_bridge_bound_beyond_loopback_answers_by_this_hosts_addresses_and_names() -> None:
    """--host 0.0.0.0: clients on the network name this host by its IPs or its hostname (421 before); any other
    Host still gets 421, the token stays the gate, and --allowed-host adds names (a bare HOST: any port)."""
    addresses = non_loopback_addresses()
    with BridgeProcess(FIXTURE_CMD, "--host", "0.0.0.0", "--allowed-host", "mcp.example",
                       secrets={"auth_token": TOKEN}) as bridge:
        for name in [*addresses, *local_names()]:
            assert post(bridge, host=format_host(name, bridge.port)).status_code == 200, name
        assert post(bridge, host="mcp.example").status_code == 200
        assert post(bridge, host="attacker.example:80").status_code == 421
        assert post(bridge, host=f"{addresses[0]}:{bridge.port + 1}").status_code == 421
        assert post(bridge, token=None, host=f"{addresses[0]}:{bridge.port}").status_code == 401


def test_a_loopback_bridge_refuses_this_hosts_other_addresses_and_star_turns_the_check_off() -> None:
    address = non_loopback_addresses()[0]
    with BridgeProcess(FIXTURE_CMD) as bridge:
        assert post(bridge, token=None, host=format_host(address, bridge.port)).status_code == 421
    with BridgeProcess(FIXTURE_CMD, "--allowed-host", "*", secrets={"auth_token": TOKEN}) as bridge:
        assert post(bridge, host="attacker.example:80").status_code == 200
        assert post(bridge, token=None, host="attacker.example:80").status_code == 401
        assert "--allowed-host '*' turns the Host check of the MCP bridge off" in bridge.stderr()
