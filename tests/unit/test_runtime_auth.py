"""A token for the chat page and the RAG service (--auth-token-file): bearer on every route but /healthz, a login
form and an HttpOnly SameSite=Strict session cookie for the browser, and the loud warning for a bind beyond loopback
without a token (as the MCP bridge has)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from lazyllm_images.runtime import auth
from lazyllm_images.runtime.chat import cli as chat_cli
from lazyllm_images.runtime.chat.app import make_app
from lazyllm_images.runtime.chat.config import ChatConfig
from lazyllm_images.runtime.rag import __main__ as rag_main

TOKEN = "tok-5d1e0c7f9a"
CFG = ChatConfig(upstream="http://up/v1/chat/completions", model="tiny", auth_token=TOKEN)
HTML = {"accept": "text/html,application/xhtml+xml"}


def upstream(request: httpx.Request) -> httpx.Response:
    assert "cookie" not in request.headers and TOKEN not in str(request.headers)   # never forwarded
    body = b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def chat(check: Any, cfg: ChatConfig = CFG) -> None:
    async def main() -> None:
        app = make_app(cfg, transport=httpx.MockTransport(upstream))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as c:
                await check(c)
    anyio.run(main)


def test_the_chat_page_needs_the_token_everywhere_but_healthz() -> None:
    async def check(c: httpx.AsyncClient) -> None:
        assert (await c.get("/healthz")).status_code == 200
        for path in ("/api/info", "/static/chat.js", "/"):
            r = await c.get(path)
            assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized", path
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await c.post("/api/chat", json={"messages": [{"role": "user", "content": "q"}]})).status_code == 401
        assert (await c.get("/api/info", headers={"authorization": "Bearer wrong"})).status_code == 401
        r = await c.get("/api/info", headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and TOKEN not in r.text
    chat(check)


def test_a_browser_signs_in_once_and_holds_a_strict_httponly_cookie() -> None:
    async def check(c: httpx.AsyncClient) -> None:
        r = await c.get("/", headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "login"
        assert (await c.get("/static/deep/x.css", headers=HTML)).headers["location"] == "../../login"
        form = await c.get("/login")
        assert form.status_code == 200 and 'name="token"' in form.text and 'type="password"' in form.text
        bad = await c.post("/login", data={"token": "guess"})
        assert bad.status_code == 401 and "Wrong token" in bad.text and "set-cookie" not in bad.headers
        assert (await c.post("/login", content=b"token=" + b"x" * 5000)).status_code == 413
        good = await c.post("/login", data={"token": TOKEN})
        assert good.status_code == 303 and good.headers["location"] == "./"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie
        name, value = cookie.split(";")[0].split("=", 1)
        jar = {"cookie": f"other=1; {name}={value}"}
        assert (await c.get("/", headers={**HTML, **jar})).status_code == 200
        assert (await c.get("/api/info", headers=jar)).status_code == 200
        r = await c.post("/api/chat", json={"messages": [{"role": "user", "content": "q"}]}, headers=jar)
        assert r.status_code == 200 and '"content": "hi"' in r.text
        assert (await c.get("/api/info", headers={"cookie": f"{name}={value[:-1]}0"})).status_code == 401
    chat(check)


def test_a_cookie_of_another_token_is_refused_and_no_token_means_open() -> None:
    name, value = auth.session_cookie("another-token-123")
    assert auth.session_cookie(TOKEN)[0] != name
    assert not auth.cookie_ok(f"{name}={value}", TOKEN) and auth.cookie_ok(f"{name}={value}", "another-token-123")

    async def check(c: httpx.AsyncClient) -> None:
        assert (await c.get("/api/info")).status_code == 200
        assert (await c.get("/login")).status_code == 404
    chat(check, ChatConfig(upstream="http://up/v1/chat/completions", model="tiny"))


def test_bearer_and_token_file_rules(tmp_path: Path) -> None:
    assert auth.bearer_ok(f"Bearer {TOKEN}", TOKEN.encode()) and auth.bearer_ok(f"bearer  {TOKEN} ", TOKEN.encode())
    assert not auth.bearer_ok(None, b"x") and not auth.bearer_ok(f"Basic {TOKEN}", TOKEN.encode())
    f = tmp_path / "token"
    f.write_text(f"{TOKEN}\n")
    assert auth.read_token_file(f) == TOKEN
    for text, why in (("", "empty"), ("two words", "one word")):
        f.write_text(text)
        with pytest.raises(auth.TokenFileError, match=why):
            auth.read_token_file(f)
    with pytest.raises(auth.TokenFileError, match="cannot read"):
        auth.read_token_file(tmp_path / "missing")


def test_the_rag_service_needs_the_token_everywhere_but_healthz(tmp_path: Path) -> None:
    from test_rag_api import serve
    with serve(tmp_path, token=TOKEN) as c:
        assert c.get("/healthz").status_code == 200
        for method, path in (("GET", "/v1/status"), ("GET", "/v1/models"), ("POST", "/v1/query"),
                             ("POST", "/v1/chat/completions"), ("POST", "/v1/reindex")):
            r = c.request(method, path, json={"query": "q"})
            assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized", path
        assert c.get("/v1/status", headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.get("/v1/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        r = c.post("/v1/query", json={"query": "q"}, headers={"authorization": f"Bearer {TOKEN}"})
        assert r.json() == {"answer": None, "sources": []}
        assert c.get("/login").status_code == 401                  # no login page: an API only


@pytest.fixture()
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize("host, with_token, warned", [("0.0.0.0", False, True), ("0.0.0.0", True, False),
                                                      ("127.0.0.1", False, False), ("192.0.2.5", False, True)])
def test_loud_warning_beyond_loopback_without_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      no_serving: list[dict], host: str, with_token: bool,
                                                      warned: bool) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token = ["--auth-token-file", str(token_file)] if with_token else []
    assert chat_cli.main(["--upstream", "http://m:8000", "--model", "m", "--host", host, *token]) == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    assert rag_main.main(["--documents", str(docs), "--index", str(tmp_path / "i"), "--embed-url", "http://e",
                          "--embed-model", "m", "--host", host, *token]) == 0
    err = capsys.readouterr().err
    assert len(no_serving) == 2 and TOKEN not in err
    assert (f"WARNING: the chat page listens on {host}" in err) is warned
    assert (f"WARNING: the RAG service listens on {host}" in err) is warned


def test_a_bad_token_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           no_serving: list[dict]) -> None:
    (tmp_path / "empty").write_text("\n")
    assert chat_cli.main(["--upstream", "http://m", "--model", "m", "--auth-token-file", str(tmp_path / "empty")]) == 2
    assert rag_main.main(["--documents", str(tmp_path), "--index", str(tmp_path / "i"), "--embed-url", "http://e",
                          "--embed-model", "m", "--auth-token-file", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "--auth-token-file" in err and "empty" in err and "cannot read" in err and not no_serving
