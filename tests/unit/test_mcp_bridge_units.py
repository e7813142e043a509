"""Pure pieces of the MCP bridge: argv, stdin secrets, redaction, Host/Origin/token policy, routing rules, backoff,
and the host-path command line (no processes, no sockets)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from lazyllm_images.requests import McpServerRequest
from lazyllm_images.runtime.mcp_bridge import jsonrpc as rpc
from lazyllm_images.runtime.mcp_bridge.child import child_environment
from lazyllm_images.runtime.mcp_bridge.config import (ConfigError, Secrets, parse_args, parse_secrets, read_secrets,
                                                      resolve_token)
from lazyllm_images.runtime.mcp_bridge.redact import MASK, Redactor, RedactingStream
from lazyllm_images.runtime import netaddr
from lazyllm_images.runtime.mcp_bridge.security import (Policy, default_allowed_hosts, exposure_warning,
                                                        format_host, is_loopback)
from lazyllm_images.runtime.mcp_bridge.supervisor import BACKOFF_CAP, backoff_delay
from lazyllm_images.services.mcp_host import bridge_argv, secrets_line

# ---------------------------------------------------------------------- argv


def test_parse_args_defaults_and_command_after_double_dash() -> None:
    cfg = parse_args(["--", "npx", "-y", "@modelcontextprotocol/server-github"])
    assert (cfg.command, cfg.args) == ("npx", ("-y", "@modelcontextprotocol/server-github"))
    assert (cfg.host, cfg.port, cfg.restart, cfg.isolate, cfg.pass_environment) == ("127.0.0.1", 0, "no", False, False)
    assert cfg.idle_timeout == 1800 and cfg.max_body_bytes == 4 * 1024 * 1024


def test_parse_args_all_options() -> None:
    cfg = parse_args(["--host", "0.0.0.0", "--port", "8080", "--allowed-host", "127.0.0.1:49152",
                      "--allowed-host", "Proxy.Example:*", "--allow-origin", "http://app.example:3000",
                      "--allow-origin", "*", "--auth-token-file", "/run/tok", "--secrets-stdin", "--pass-environment",
                      "--isolate", "--restart", "on-failure", "--idle-timeout", "0", "--max-body-bytes", "1024",
                      "--url-file", "/tmp/u.json", "--log-level", "DEBUG", "--", "uvx", "mcp-server-fetch"])
    assert cfg.port == 8080 and cfg.host == "0.0.0.0"
    assert cfg.allowed_hosts == ("127.0.0.1:49152", "proxy.example:*")
    assert cfg.allow_origins == ("http://app.example:3000", "*")
    assert cfg.isolate and cfg.pass_environment and cfg.secrets_stdin and cfg.restart == "on-failure"
    assert (cfg.idle_timeout, cfg.max_body_bytes, cfg.log_level) == (0, 1024, "debug")
    assert (cfg.command, cfg.args) == ("uvx", ("mcp-server-fetch",))


def test_allow_origin_never_swallows_the_command() -> None:
    """mcp-proxy's nargs='+' ate the command; here each flag takes exactly one value."""
    cfg = parse_args(["--allow-origin", "*", "mcp-server-time", "--local-timezone", "UTC"])
    assert cfg.allow_origins == ("*",)
    assert (cfg.command, cfg.args) == ("mcp-server-time", ("--local-timezone", "UTC"))


@pytest.mark.parametrize("argv", [
    [],                                          # no command
    ["--port", "70000", "--", "x"],
    ["--port", "http", "--", "x"],
    ["--idle-timeout", "-1", "--", "x"],
    ["--max-body-bytes", "0", "--", "x"],
    ["--allowed-host", "bad host", "--", "x"],
    ["--allowed-host", "host:http", "--", "x"],
    ["--allowed-host", "::1", "--", "x"],
    ["--allow-origin", "example.com", "--", "x"],
    ["--restart", "always", "--", "x"],
    ["--bogus", "--", "x"],
    ["--url-file", "/no/such/folder/urls.json", "--", "x"],
])
def test_bad_argv_is_a_config_error_with_a_hint(argv: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_args(argv)
    assert err.value.hint


# ---------------------------------------------------------------------- secrets


def test_secrets_line_parsed_and_only_one_line_read() -> None:
    stream = io.BytesIO(b'{"env": {"GITHUB_TOKEN": "ghp_x"}, "auth_token": " tok "}\nNEXT LINE\n')
    secrets = read_secrets(stream)
    assert secrets == Secrets(env={"GITHUB_TOKEN": "ghp_x"}, auth_token="tok")
    assert stream.read() == b"NEXT LINE\n"
    assert parse_secrets(b"{}\n") == Secrets()


@pytest.mark.parametrize("line", [b"", b"\n", b"not json\n", b"[]\n", b'{"env": {"A": 1}}\n',
                                  b'{"env": [], "x": 1}\n', b'{"auth_token": ""}\n', b'{"env": {"": "v"}}\n'])
def test_bad_secrets_line(line: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_secrets(line)


def test_token_from_file_or_stdin_but_not_both(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    cfg = parse_args(["--auth-token-file", str(token_file), "--", "x"])
    assert resolve_token(cfg, Secrets()) == "s3cret-token"
    with pytest.raises(ConfigError):
        resolve_token(cfg, Secrets(auth_token="other"))
    assert resolve_token(parse_args(["--", "x"]), Secrets(auth_token="abc")) == "abc"
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ConfigError):
        resolve_token(parse_args(["--auth-token-file", str(tmp_path / "empty"), "--", "x"]), Secrets())
    with pytest.raises(ConfigError):
        resolve_token(parse_args(["--auth-token-file", str(tmp_path / "missing"), "--", "x"]), Secrets())


# ---------------------------------------------------------------------- redaction


def test_redactor_masks_values_and_their_json_forms() -> None:
    red = Redactor(["ghp_secret", 'quo"te\\value', None, "1"])
    assert red("token=ghp_secret!") == f"token={MASK}!"
    assert red(json.dumps({"v": 'quo"te\\value'})) == '{"v": "***"}'
    assert red("port 1 stays") == "port 1 stays"          # too short to be a secret
    assert not Redactor([]) and Redactor([])("x") == "x"


def test_redactor_longest_first() -> None:
    assert Redactor(["abcd", "abcdefgh"])("abcdefgh abcd") == f"{MASK} {MASK}"


def test_redacting_stream() -> None:
    inner = io.StringIO()
    stream = RedactingStream(inner, Redactor(["hunter2-pass"]))
    stream.write("pw=hunter2-pass\n")
    stream.writelines(["a hunter2-pass b\n"])
    assert "hunter2" not in inner.getvalue() and inner.getvalue().count(MASK) == 2


# ---------------------------------------------------------------------- security policy


def test_default_allowed_hosts_use_the_bound_port() -> None:
    hosts = default_allowed_hosts("0.0.0.0", 8000, ["127.0.0.1:49152"])
    assert hosts[:3] == ("0.0.0.0:8000", "localhost:8000", "127.0.0.1:8000")
    assert "127.0.0.1:49152" in hosts and "[::1]:8000" in hosts
    assert format_host("::1", 80) == "[::1]:80"


def _policy(**kw: object) -> Policy:
    args = {"hosts": default_allowed_hosts("127.0.0.1", 8000, ["proxy.example:*"]), "allow_origins": (),
            "token": None, "max_body_bytes": 100}
    args.update(kw)
    return Policy.build(**args)  # type: ignore[arg-type]


def test_host_check() -> None:
    p = _policy()
    assert p.host_ok("127.0.0.1:8000") and p.host_ok("LOCALHOST:8000") and p.host_ok("proxy.example:443")
    assert not p.host_ok("127.0.0.1:8001") and not p.host_ok("evil.example:8000") and not p.host_ok(None)
    assert not p.host_ok("localhost") and p.host_ok("proxy.example")          # HOST:* also without a port


def test_allowed_host_forms_exact_name_and_star() -> None:
    cfg = parse_args(["--allowed-host", "*", "--allowed-host", "Example.COM", "--allowed-host", "gw.example:8443",
                      "--allowed-host", "[::1]:80", "--", "x"])
    assert cfg.allowed_hosts == ("*", "example.com", "gw.example:8443", "[::1]:80")
    p = _policy(hosts=default_allowed_hosts("127.0.0.1", 8000, ["example.com", "gw.example:8443"]))
    assert p.host_ok("example.com") and p.host_ok("EXAMPLE.com:9999")             # a bare HOST: any port
    assert p.host_ok("gw.example:8443") and not p.host_ok("gw.example:8444") and not p.host_ok("gw.example")
    assert not p.host_ok("sub.example.com:8000") and not p.host_ok("example.com.evil:8000")
    assert p.origin_ok("https://example.com") and not p.origin_ok("https://gw.example:8444")
    anything = _policy(hosts=("*",))
    assert anything.host_ok("attacker.example:80") and not anything.host_ok(None)
    assert not anything.origin_ok("http://attacker.example")                      # Origin is checked on its own
    assert netaddr.host_check_off_warning(cfg.allowed_hosts) and netaddr.host_check_off_warning(["a.b"]) is None


def test_loopback_binds_keep_refusing_foreign_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS-rebinding protection: bound to loopback, only localhost names pass, even this host's own addresses."""
    monkeypatch.setattr(netaddr, "local_addresses", lambda: ["192.0.2.7", "2001:db8::7"])
    monkeypatch.setattr(netaddr, "local_names", lambda: ["box", "box.lan"])
    assert netaddr.reachable_as("127.0.0.1") == [] and netaddr.reachable_as("localhost") == []
    assert netaddr.reachable_as("0.0.0.0") == ["192.0.2.7", "[2001:db8::7]", "box", "box.lan"]
    assert netaddr.reachable_as("192.0.2.7") == ["192.0.2.7", "box", "box.lan"]
    loop = _policy(hosts=default_allowed_hosts("127.0.0.1", 8000))
    assert not loop.host_ok("192.0.2.7:8000") and not loop.host_ok("attacker.example:8000")


def test_origin_check() -> None:
    p = _policy(allow_origins=("http://app.example:3000",))
    assert p.origin_ok(None)                                  # non-browser clients send none
    assert p.origin_ok("http://127.0.0.1:8000") and p.origin_ok("http://localhost:8000")
    assert p.origin_ok("http://app.example:3000") and p.origin_ok("https://proxy.example:8443")
    assert not p.origin_ok("http://evil.example") and not p.origin_ok("null")
    assert _policy(allow_origins=("*",)).origin_ok("http://evil.example")


def test_token_check() -> None:
    p = _policy(token="t0ken-value")
    assert p.token_ok("Bearer t0ken-value") and p.token_ok("bearer t0ken-value")
    assert not p.token_ok(None) and not p.token_ok("Bearer wrong") and not p.token_ok("Basic t0ken-value")
    assert _policy().token_ok(None)


def test_exposure_warning() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", "tok") is None
    assert "WARNING" in (exposure_warning("0.0.0.0", None) or "")


# ---------------------------------------------------------------------- routing rules


class S:
    def __init__(self, name: str, caps: dict, active: int) -> None:
        self.name, self.caps, self.active = name, caps, active


def _pick(method: str, sessions: list[S]) -> tuple[str | None, str]:
    found, why = rpc.pick_session(method, sessions, lambda s: s.active, lambda s: s.caps)
    return (found.name if found else None), why


def test_server_request_goes_to_the_only_busy_session() -> None:
    a, b = S("a", {"sampling": {}}, 1), S("b", {"sampling": {}}, 0)
    assert _pick("sampling/createMessage", [a, b]) == ("a", "")


def test_server_request_to_the_only_able_idle_session() -> None:
    a, b = S("a", {}, 0), S("b", {"roots": {}}, 0)
    assert _pick("roots/list", [a, b])[0] == "b"


def test_ambiguous_or_unable_server_requests_are_refused() -> None:
    a, b = S("a", {"sampling": {}}, 1), S("b", {"sampling": {}}, 1)
    name, why = _pick("sampling/createMessage", [a, b])
    assert name is None and "--isolate" in why
    assert _pick("sampling/createMessage", [S("a", {}, 1)])[0] is None
    assert _pick("elicitation/create", [S("a", {}, 0)])[0] is None
    assert _pick("roots/list", [S("a", {"roots": {}}, 0), S("b", {"roots": {}}, 0)])[0] is None


def test_failure_is_a_tool_error_for_tools_call() -> None:
    tool = rpc.failure(7, "tools/call", "gone").model_dump(by_alias=True, exclude_none=True)
    assert tool["id"] == 7 and tool["result"]["isError"] is True
    other = rpc.failure(8, "tools/list", "gone").model_dump(by_alias=True, exclude_none=True)
    assert other["error"]["message"] == "gone"


def test_protocol_version_negotiation() -> None:
    assert rpc.negotiate_version("2025-03-26", "2025-11-25") == "2025-03-26"
    assert rpc.negotiate_version("2025-11-25", "2025-06-18") == "2025-06-18"
    assert rpc.negotiate_version("1999-01-01", "2025-06-18") == "2025-06-18"


def test_log_levels() -> None:
    assert rpc.level_passes("error", "warning") and not rpc.level_passes("info", "warning")
    assert rpc.level_passes("debug", None)
    assert rpc.most_verbose(["error", None, "info"]) == "info" and rpc.most_verbose([None]) is None


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(50) == BACKOFF_CAP


def test_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAZYLLM_UNIT_ONLY_HERE", "1")
    safe = child_environment({"TOKEN": "v"}, pass_environment=False)
    assert safe["TOKEN"] == "v" and "LAZYLLM_UNIT_ONLY_HERE" not in safe and "PATH" in safe
    full = child_environment({"PATH": "/override"}, pass_environment=True)
    assert full["LAZYLLM_UNIT_ONLY_HERE"] == "1" and full["PATH"] == "/override"


# ---------------------------------------------------------------------- host path of the CLI


def test_host_bridge_argv_never_carries_secrets() -> None:
    request = McpServerRequest(command="npx", args=("-y", "@modelcontextprotocol/server-github"),
                               env=(("GITHUB_TOKEN", "ghp_value"),), pass_environment=True, sse_port=8080,
                               sse_host="127.0.0.1", allow_origins=("*",), auth_token="tok-value", isolate=True,
                               restart="on-failure", url_file="urls.json", container=False,
                               allowed_hosts=("mcp.example", "gw.example:8443"))
    argv = bridge_argv(request, python="/py")
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--allowed-host"] == ["mcp.example", "gw.example:8443"]
    assert argv[:3] == ["/py", "-m", "lazyllm_images.runtime.mcp_bridge"]
    assert argv[argv.index("--port") + 1] == "8080" and "--secrets-stdin" in argv
    assert argv[argv.index("--"):] == ["--", "npx", "-y", "@modelcontextprotocol/server-github"]
    assert argv[argv.index("--url-file") + 1] == os.path.abspath("urls.json")
    assert not any("ghp_value" in a or "tok-value" in a for a in argv)
    assert json.loads(secrets_line(request) or b"") == {"env": {"GITHUB_TOKEN": "ghp_value"},
                                                        "auth_token": "tok-value"}
    plain_request = McpServerRequest(command="mcp-server-time", container=False)
    assert secrets_line(plain_request) is None and "--secrets-stdin" not in bridge_argv(plain_request)
