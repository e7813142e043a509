"""The Swarm target on a real 3-node Swarm (``scripts/swarm.sh``: dockerds in network namespaces on this machine).

The embedding model server goes the user's way: ``lazyllm deploy ... --target swarm --registry R``, its image pushed
to the test registry, ``lazyllm stack up``; requests reach it through the host-mode port on the node running it;
the node is killed and Swarm places it on the other worker. GPUs are the nodes' fake generic resources (one each on
nodes 2 and 3): placement, ``DOCKER_RESOURCE_NVIDIA-GPU``, and the "insufficient resources" failure. The manager
(node 1) is drained, as production managers often are, so every task runs on a worker that can be lost.

Needs root (network namespaces, a bridge, iptables) and the default engine (it builds and pushes the images).
``LAZYLLM_KEEP_SWARM=1`` leaves the Swarm up afterwards (scripts/swarm.sh down removes it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_cli import lazyllm

pytestmark = [pytest.mark.e2e, pytest.mark.swarm]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "swarm.sh"
BASE = "lazyllm/base-offline:debian-bookworm"
# the engine the tool builds on (and pushes from): the one the rest of the tests use
DEFAULT_ENGINE = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
PREPULL: list[subprocess.Popen] = []
RUN_LABEL = {"org.lazyllm.test-run": os.environ.get("LAZYLLM_TEST_RUN", "swarm")}


@dataclass(frozen=True)
class Swarm:
    env: dict[str, str]          # DOCKER_HOST (the manager), LAZYLLM_SWARM_REGISTRY, LAZYLLM_SWARM_NODE1..3

    @property
    def manager(self) -> str:
        return self.env["DOCKER_HOST"]

    @property
    def registry(self) -> str:
        return self.env["LAZYLLM_SWARM_REGISTRY"]

    def node_host(self, hostname: str) -> str:
        return self.env[f"LAZYLLM_SWARM_NODE{hostname.rsplit('node', 1)[1]}"]


def docker(*args: str, host: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", "-H", host, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False)


def leftovers() -> list[str]:
    """What scripts/swarm.sh down must have removed."""
    out = []
    if Path("/run/netns").is_dir():
        out += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith("lzsw")]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=False).stdout
    out += [f"link {ln.split()[0]}" for ln in links.splitlines() if ln.startswith("lzsw")]
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    out += [f"process {ln[:80]}" for ln in procs.splitlines() if "lazyllm-swarm" in ln]
    out += [f"folder {p}" for p in ("/run/lazyllm-swarm", "/var/lib/lazyllm-swarm") if os.path.exists(p)]
    return out


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    if os.geteuid() != 0:
        pytest.skip("a Swarm of network namespaces needs root")
    for tool in ("ip", "iptables", "nsenter", "unshare", "docker", "docker-registry"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing (scripts/swarm.sh needs it)")
    if docker("version", host=DEFAULT_ENGINE, check=False).returncode != 0:
        pytest.skip(f"no engine answers at {DEFAULT_ENGINE} (make engine): it builds and pushes the images")
    if "lazyllm-swarm" in DEFAULT_ENGINE:
        pytest.skip("DOCKER_HOST names a node of the test Swarm: run the tests from a shell without it")
    started = time.monotonic()
    up = script("up")
    assert up.returncode == 0, up.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in script("env").stdout.splitlines())
    s = Swarm(env)
    docker("node", "update", "--availability", "drain", "lzsw-node1", host=s.manager)
    print(f"swarm up in {time.monotonic() - started:.1f} s")
    try:
        yield s
    finally:
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", host=DEFAULT_ENGINE).stdout.split()
        ours = [t for t in tags if t.startswith(f"{s.registry}/")]       # the push tags (the images stay)
        if ours:
            docker("rmi", *ours, host=DEFAULT_ENGINE, check=False)
        if not os.environ.get("LAZYLLM_KEEP_SWARM"):
            down = script("down")
            assert down.returncode == 0, down.stderr
            assert leftovers() == []


@contextmanager
def on(s: Swarm) -> Iterator[None]:
    """The backend (in this process) talks to the manager."""
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = s.manager
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old


def push(s: Swarm, remote: str) -> None:
    """Tag and push a local image of the default engine as ``remote`` (REGISTRY/lazyllm/REF)."""
    local = remote.removeprefix(f"{s.registry}/lazyllm/")
    docker("tag", local, remote, host=DEFAULT_ENGINE)
    docker("push", "-q", remote, host=DEFAULT_ENGINE, timeout=600)


def stack_up(s: Swarm, path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return lazyllm("stack", "up", str(path), "--timeout", str(timeout), env={"DOCKER_HOST": s.manager},
                   timeout=timeout + 120)


def api_url(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.strip().startswith("api:"))
    return line.split("api:", 1)[1].strip()


def embeddings(url: str, text: str) -> list[float]:
    r = httpx.post(f"{url}/embeddings", json={"model": "all-MiniLM-L6-v2", "input": [text]}, timeout=30, trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["embedding"]


def running_node(s: Swarm, stack: str) -> str:
    rows = [json.loads(ln) for ln in docker("stack", "ps", stack, "--format", "{{json .}}", "--filter",
                                            "desired-state=running", host=s.manager).stdout.splitlines()]
    return next(r["Node"] for r in rows if r["CurrentState"].startswith("Running"))


# ------------------------------------------------------------------ the embedding server

@pytest.fixture(scope="module")
def embed(swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """``lazyllm deploy all-MiniLM-L6-v2 --target swarm`` written, its image pushed, ``lazyllm stack up``."""
    folder = tmp_path_factory.mktemp("swarm-embed")
    path = folder / "embed.stack.yaml"
    done = lazyllm("deploy", "all-MiniLM-L6-v2", "--framework", "embedding", "--target", "swarm", "-o", str(path),
                   "--registry", f"{swarm.registry}/lazyllm", "--name", "lzsw-embed")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = yaml.safe_load(path.read_text())
    started = time.monotonic()
    push(swarm, doc["services"]["lzsw-embed-model"]["image"])
    pushed = time.monotonic()
    up = stack_up(swarm, path)
    print(f"embedding image pushed in {pushed - started:.0f} s, stack up in {time.monotonic() - pushed:.0f} s")
    # the other worker pulls the image meanwhile: the node-loss test then times Swarm, not the registry
    other = {"lzsw-node2": "lzsw-node3", "lzsw-node3": "lzsw-node2"}[running_node(swarm, "lzsw-embed")]
    PREPULL.append(subprocess.Popen(["docker", "-H", swarm.node_host(other), "pull", "-q",
                                     doc["services"]["lzsw-embed-model"]["image"]],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield path, api_url(up)
    finally:
        for proc in PREPULL:
            proc.kill()
            proc.wait()
        lazyllm("stack", "down", str(path), env={"DOCKER_HOST": swarm.manager})


def test_embedding_server_answers_through_the_host_port(embed):
    url = embed[1]
    a, b = embeddings(url, "a container runs an image"), embeddings(url, "a container runs an image")
    assert len(a) == 384 and a == b
    assert url.startswith("http://10.251.0.1")           # a node's address on the test bridge, not loopback


def test_ps_lists_the_task_and_its_node(swarm, embed):
    done = lazyllm("stack", "ps", str(embed[0]), env={"DOCKER_HOST": swarm.manager})
    assert done.returncode == 0, done.stderr
    assert "lzsw-embed-model" in done.stdout and "lzsw-node" in done.stdout


# ------------------------------------------------------------------ the RAG service (three units) as a stack

DOCS = REPO / "examples" / "docs"


def test_rag_service_as_a_stack_answers_with_its_token_and_comes_down(swarm):
    """``run rag --target swarm``: embedding server, RAG service and chat page as one stack; no start order on
    Swarm (the RAG service waits for the embedding server by retrying); the auth token reaches the RAG service as a
    Swarm secret; the documents folder is a bind (on this machine every node sees the same file system)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"lzsw-rag-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / "rag.stack.yaml"
    done = lazyllm("run", "rag", "--documents", str(DOCS), "--name", "lzsw-rag", "--auth-token", "tok-swarm-1",
                   "--target", "swarm", "-o", str(path), "--registry", f"{swarm.registry}/lazyllm")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tok-swarm-1" not in path.read_text()
    doc = yaml.safe_load(path.read_text())
    assert set(doc["services"]) == {"lzsw-rag-embed", "lzsw-rag-rag", "lzsw-rag-chat"}
    for image in {svc["image"] for svc in doc["services"].values()}:
        push(swarm, image)
    try:
        up = stack_up(swarm, path, timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        rag = next(ln.split("rag:", 1)[1].strip() for ln in up.stdout.splitlines() if ln.strip().startswith("rag:"))
        ask = {"model": "lazyllm-rag", "messages": [{"role": "user", "content": "how are layers tagged?"}]}
        assert httpx.post(f"{rag}/chat/completions", json=ask, timeout=60, trust_env=False).status_code == 401
        answer = httpx.post(f"{rag}/chat/completions", json=ask, timeout=60, trust_env=False,
                            headers={"Authorization": "Bearer tok-swarm-1"})
        assert answer.status_code == 200, answer.text
        assert "layers.md" in answer.json()["choices"][0]["message"]["content"]
        chat = next(ln.split("chat:", 1)[1].strip() for ln in up.stdout.splitlines() if ln.strip().startswith("chat:"))
        assert httpx.get(chat, timeout=30, trust_env=False).status_code == 401      # the page's token too
        page = httpx.get(chat, timeout=30, trust_env=False, headers={"Authorization": "Bearer tok-swarm-1"})
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        down = lazyllm("stack", "down", str(path), env={"DOCKER_HOST": swarm.manager})
    assert down.returncode == 0, down.stderr
    for kind in ("service", "secret", "network"):
        assert docker(kind, "ls", "-q", "--filter", "label=com.docker.stack.namespace=lzsw-rag",
                      host=swarm.manager).stdout == "", kind


# ------------------------------------------------------------------ secrets and placement on one node

def test_secrets_reach_the_process_never_the_service_spec(swarm, embed, tmp_path):
    from lazyllm_images.backends import swarm as backend
    from lazyllm_images.launch import swarm as renderer
    from lazyllm_images.launch.spec import LaunchSpec, service_labels
    from lazyllm_images.launch.unit import Service, Unit
    image = yaml.safe_load(embed[0].read_text())["services"]["lzsw-embed-model"]["image"]
    node = running_node(swarm, "lzsw-embed")           # it has the image: pinned there, as for local-only images
    code = "import os, time; open('/tmp/probe', 'w').write(os.environ['LZSW_PROBE']); time.sleep(3600)"
    spec = LaunchSpec("lzsw-secret-probe", image, command=("python3", "-c", code), role="rag",
                      labels={**service_labels("lzsw-secret", "rag"), **RUN_LABEL})
    svc = Service("lzsw-secret", (Unit(spec, secrets={"env": {"LZSW_PROBE": "s3cr3t-value"}}),))
    out = renderer.render(svc, None, str(tmp_path / "secret.stack.yaml"), node_hostname=node)
    for rel, text, mode in out.files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
        (tmp_path / rel).chmod(mode)
    path = tmp_path / "secret.stack.yaml"
    doc = yaml.safe_load(path.read_text())
    with on(swarm):
        try:
            backend.up(str(path), doc, 120)
            spec_text = docker("service", "inspect", "lzsw-secret_lzsw-secret-probe", host=swarm.manager).stdout
            assert "s3cr3t-value" not in spec_text
            host = swarm.node_host(node)
            cid = docker("ps", "-q", "--filter", "label=com.docker.stack.namespace=lzsw-secret", host=host).stdout
            for _ in range(30):
                read = docker("exec", cid.strip(), "cat", "/tmp/probe", host=host, check=False)
                if read.returncode == 0:
                    break
                time.sleep(1)
            assert read.stdout == "s3cr3t-value"
        finally:
            backend.down(str(path), doc)
        assert docker("secret", "ls", "-q", "--filter", "label=org.lazyllm.service=lzsw-secret",
                      host=swarm.manager).stdout == ""


# ------------------------------------------------------------------ GPUs as generic resources

def gpu_stack(tmp_path: Path, name: str, count: int, registry: str) -> tuple[str, dict]:
    from lazyllm_images.launch import swarm as renderer
    from lazyllm_images.launch.spec import GpuRequest, LaunchSpec, service_labels
    from lazyllm_images.launch.unit import Service, Unit
    units = tuple(Unit(LaunchSpec(f"{name}-{i}", BASE, command=("sleep", "3600"), gpus=GpuRequest("count", count=1),
                                  user="65534:65534", labels={**service_labels(name, "model"), **RUN_LABEL}))
                  for i in range(count))
    path = tmp_path / f"{name}.stack.yaml"
    for rel, text, mode in renderer.render(Service(name, units), registry, str(path)).files:
        (tmp_path / rel).write_text(text)
        (tmp_path / rel).chmod(mode)
    return str(path), yaml.safe_load(path.read_text())


def test_gpu_tasks_land_on_nodes_advertising_them_and_one_more_waits(swarm, tmp_path):
    from lazyllm_images.backends import swarm as backend
    from lazyllm_images.errors import LaunchError
    version = docker("version", "--format", "{{.Server.Version}}", host=swarm.manager).stdout.strip()
    if version.startswith("20."):
        pytest.skip(f"the manager runs Docker {version}, whose scheduler cannot place a GPU task on an overlay "
                    "network (moby#44378): scripts/engine.sh current fetches a newer dockerd for it")
    push(swarm, f"{swarm.registry}/lazyllm/{BASE}")
    two = gpu_stack(tmp_path, "lzsw-gpu", 2, f"{swarm.registry}/lazyllm")
    more = gpu_stack(tmp_path, "lzsw-gpu-more", 1, f"{swarm.registry}/lazyllm")
    with on(swarm):
        try:
            backend.up(*two, 120)
            seen = {}
            for row in backend.ps(*two):
                host = swarm.node_host(row["node"])
                cid = docker("ps", "-q", "--filter", "label=com.docker.stack.namespace=lzsw-gpu", "--filter",
                             f"label=com.docker.swarm.service.name=lzsw-gpu_{row['service']}", host=host).stdout
                env = docker("inspect", cid.strip(), "--format", "{{json .Config.Env}}", host=host).stdout
                seen[row["node"]] = next(e for e in json.loads(env) if e.startswith("DOCKER_RESOURCE_NVIDIA-GPU="))
            assert seen == {"lzsw-node2": "DOCKER_RESOURCE_NVIDIA-GPU=GPU-fake0",
                            "lzsw-node3": "DOCKER_RESOURCE_NVIDIA-GPU=GPU-fake1"}
            with pytest.raises(LaunchError) as err:
                backend.up(*more, 15)
            assert "insufficient resources" in err.value.message and "GPU" in err.value.hint
            assert docker("service", "ls", "-q", "--filter", "label=com.docker.stack.namespace=lzsw-gpu-more",
                          host=swarm.manager).stdout == ""          # a stack that did not come up is removed
        finally:
            backend.down(*more)
            backend.down(*two)


# ------------------------------------------------------------------ refusals

def test_not_a_manager_is_one_error_and_hint(swarm, embed):
    engines = [swarm.env["LAZYLLM_SWARM_NODE2"]]                  # a worker
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}", host=DEFAULT_ENGINE).stdout.strip()
    if state == "inactive":
        engines.append(DEFAULT_ENGINE)                            # an engine in no Swarm
    for host in engines:
        done = lazyllm("stack", "up", str(embed[0]), env={"DOCKER_HOST": host})
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert lines[-2].startswith("error:") and "not a Swarm manager" in lines[-2], host
        assert lines[-1].startswith("hint:") and "docker swarm init" in lines[-1]


def test_an_invalid_edit_is_refused_in_one_line(swarm, embed, tmp_path):
    doc = yaml.safe_load(embed[0].read_text())
    doc["services"]["lzsw-embed-model"]["gpus"] = "all"
    bad = tmp_path / "bad.stack.yaml"
    bad.write_text(yaml.safe_dump(doc))
    done = lazyllm("stack", "up", str(bad), env={"DOCKER_HOST": swarm.manager})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith("error: docker stack deploy refused") and "gpus" in lines[-2]
    assert lines[-1].startswith("hint:")


# ------------------------------------------------------------------ node loss (last: it kills a worker)

def test_a_lost_node_s_task_comes_back_healthy_on_another(swarm, embed):
    path, url = embed
    before = embeddings(url, "hello")
    node = running_node(swarm, "lzsw-embed")
    for proc in PREPULL:
        proc.wait(300)
    killed = time.monotonic()
    assert script("kill", node.rsplit("node", 1)[1]).returncode == 0
    try:
        while docker("node", "inspect", node, "--format", "{{.Status.State}}", host=swarm.manager).stdout.strip() \
                != "down":
            assert time.monotonic() - killed < 60, f"{node} still not down after 60 s"
            time.sleep(0.5)
        down_after = time.monotonic() - killed
        again = stack_up(swarm, path, timeout=180)            # waits for a running (healthy) task on a live node
        new_url = api_url(again)
        print(f"{node} down after {down_after:.0f} s; its task healthy on another node "
              f"{time.monotonic() - killed:.0f} s after the kill")
        assert running_node(swarm, "lzsw-embed") != node
        assert new_url != url
        assert embeddings(new_url, "hello") == pytest.approx(before, abs=1e-5)
    finally:
        replaced = script("up")                               # a fresh node in place of the lost one
        assert replaced.returncode == 0, replaced.stderr[-2000:]


def test_stack_down_leaves_no_service_secret_or_network(swarm, embed):
    done = lazyllm("stack", "down", str(embed[0]), env={"DOCKER_HOST": swarm.manager})
    assert done.returncode == 0, done.stderr
    for kind in ("service", "secret", "config", "network"):
        rows = docker(kind, "ls", "-q", "--filter", "label=com.docker.stack.namespace=lzsw-embed",
                      host=swarm.manager).stdout
        assert rows == "", (kind, rows)
