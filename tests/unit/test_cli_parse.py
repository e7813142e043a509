"""Every seed example parses into the intended request; bad input gives one error line, a hint, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lazyllm_images.cli import cli, main
from lazyllm_images.requests import DeployModelRequest, InstallRequest, McpServerRequest, RunRequest


def parse(argv: list[str]):
    captured: list = []
    cli.main(args=argv, prog_name="lazyllm", standalone_mode=False, obj={"capture": captured})
    assert len(captured) == 1, f"{argv} dispatched {len(captured)} requests"
    return captured[0]


# ---------------------------------------------------------------- the seed's examples, exactly

def test_seed_mcp_uvx_fetch():
    r = parse("deploy mcp_server uvx mcp-server-fetch".split())
    assert isinstance(r, McpServerRequest)
    assert (r.command, r.args, r.env, r.sse_port, r.sse_host, r.pass_environment) == \
        ("uvx", ("mcp-server-fetch",), (), 0, "127.0.0.1", False)


def test_seed_mcp_github_with_env_and_port():
    r = parse(["deploy", "mcp_server", "-e", "GITHUB_TOKEN", "your_token", "--sse-port", "8080", "npx", "--",
               "-y", "@modelcontextprotocol/server-github"])
    assert r.command == "npx"
    assert r.args == ("-y", "@modelcontextprotocol/server-github")
    assert r.env == (("GITHUB_TOKEN", "your_token"),)
    assert r.sse_port == 8080


def test_seed_deploy_model_with_chat_and_options():
    r = parse("deploy llama3-chat --framework vllm --chat=true --top_p=0.9 --max_tokens=2048".split())
    assert isinstance(r, DeployModelRequest)
    assert (r.model, r.framework, r.chat) == ("llama3-chat", "vllm", True)
    assert r.options == (("top_p", "0.9"), ("max_tokens", "2048"))
    assert r.flags == ()


@pytest.mark.parametrize("word,value", [("true", True), ("1", True), ("on", True), ("True", True), ("ON", True),
                                        ("false", False), ("0", False), ("off", False), ("False", False)])
def test_seed_chat_words(word, value):
    assert parse(["deploy", "m", f"--chat={word}"]).chat is value


def test_deploy_default_is_detached_auto():
    r = parse(["deploy", "m"])
    assert (r.framework, r.chat, r.launch.host, r.launch.port) == ("auto", False, "127.0.0.1", None)


def test_deploy_bare_flags_are_kept():
    r = parse(["deploy", "m", "--framework=lmdeploy", "--enforce-eager", "--tp=2"])
    assert r.flags == ("enforce-eager",) and r.options == (("tp", "2"),) and r.framework == "lmdeploy"


@pytest.mark.parametrize("argv,items", [("install embedding chat", ("embedding", "chat")),
                                        ("install openai sentence-transformers", ("openai", "sentence-transformers"))])
def test_seed_install(argv, items):
    r = parse(argv.split())
    assert isinstance(r, InstallRequest) and r.items == items and not r.dry_run


def test_seed_run_chatbot():
    r = parse("run chatbot --model chatglm3-6b --framework vllm".split())
    assert isinstance(r, RunRequest)
    assert (r.target, r.model, r.framework, r.source) == ("chatbot", "chatglm3-6b", "vllm", None)


def test_seed_run_rag():
    r = parse("run rag --model bge-base --framework lightllm --documents /path/to/docs".split())
    assert (r.target, r.model, r.framework, r.documents) == ("rag", "bge-base", "lightllm", "/path/to/docs")


def test_seed_run_workflow_and_services():
    assert parse(["run", "workflow.json"]) == RunRequest(target="workflow", workflow="workflow.json")
    assert parse(["run", "training_service"]).target == "training_service"
    assert parse(["run", "infer_service"]).target == "infer_service"


# ---------------------------------------------------------------- upstream parser bugs, not copied

def test_allow_origin_takes_several_without_swallowing_the_command():
    r = parse(["deploy", "mcp_server", "--allow-origin", "http://a.example", "https://b.example:8443", "uvx",
               "mcp-server-fetch"])
    assert r.allow_origins == ("http://a.example", "https://b.example:8443")
    assert (r.command, r.args) == ("uvx", ("mcp-server-fetch",))


def test_allow_origin_star_and_repeated():
    r = parse(["deploy", "mcp_server", "--allow-origin", "*", "--allow-origin=http://x", "cmd"])
    assert r.allow_origins == ("*", "http://x") and r.command == "cmd"


def test_allowed_host_is_repeatable_and_checked():
    r = parse(["deploy", "mcp_server", "--sse-host", "0.0.0.0", "--allowed-host", "MCP.example",
               "--allowed-host", "gw.example:8443", "--allowed-host", "*", "cmd"])
    assert r.allowed_hosts == ("mcp.example", "gw.example:8443", "*") and r.command == "cmd"


def test_pass_environment_toggle():
    assert parse(["deploy", "mcp_server", "--pass-environment", "c"]).pass_environment is True
    assert parse(["deploy", "mcp_server", "--no-pass-environment", "c"]).pass_environment is False


def test_args_after_command_are_not_options_of_ours():
    r = parse(["deploy", "mcp_server", "python", "-m", "server", "--sse-port", "9"])
    assert r.command == "python" and r.args == ("-m", "server", "--sse-port", "9") and r.sse_port == 0


# ---------------------------------------------------------------- bad input: one line, a hint, exit 2

BAD = [
    (["frobnicate"], "unknown command"),
    (["deploy", "m", "--chat=maybe"], "true/false/1/0/on/off"),
    (["install"], "nothing to install"),
    (["deploy"], "deploy needs a model"),
    (["run", "rag"], "--documents"),
    (["run", "chatbot", "--model", "m", "--framework", "vllm", "--source", "openai"], "exclude each other"),
    (["run", "rag", "--documents", "d", "--framework", "vllm", "--source", "glm"], "exclude each other"),
    (["deploy", "mcp_server", "-e", "ONLY_KEY"], "-e"),
    (["deploy", "mcp_server", "-e", "KEY", "--sse-port", "8080", "npx"], "-e needs KEY VALUE"),
    (["deploy", "mcp_server"], "COMMAND"),
    (["deploy", "m", "--framework", "tensorrt"], "--framework"),
    (["deploy", "m", "stray"], "unexpected argument"),
    (["run", "chatbott"], "did you mean chatbot"),
    (["deploy", "mcp_server", "--sse-port", "99999", "c"], "--sse-port"),
    (["deploy", "mcp_server", "--allowed-host", "http://x/", "c"], "--allowed-host"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(argv, needle, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert lines[0].startswith("error: ") and needle in err, err
    assert len(lines) == 2 and lines[1].startswith("hint: "), err
    assert "Traceback" not in err


def test_a_form_a_service_does_not_have_exits_2_and_says_so(capsys):
    code = main(["run", "training_service", "--target", "k8s", "--registry", "localhost:5000/x", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "this host's Docker engine" in err and "--target compose" in err and "Traceback" not in err


def test_console_script_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "lazyllm_images", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "lazyllm, version" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lazyllm_images", "deploy", "x", "--chat=maybe"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
