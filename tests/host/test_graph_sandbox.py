"""The Code sandbox with real processes: a runaway or hostile Code node is stopped with an error naming the node,
and the worker goes on serving. Runs as root (CI) and as a non-root user where the Python installation allows it.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lazyllm_images.runtime.graph.executor import Executor
from lazyllm_images.runtime.graph.load import load_graph_strict
from lazyllm_images.runtime.graph.sandbox import (
    LocalWorker,
    SandboxCallError,
    SandboxClient,
)
from lazyllm_images.runtime.graph.sandbox.confine import readable_by_others

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox confines Linux processes")

SOCKET = "import socket\ndef f(x):\n    s = socket.socket()\n    s.connect(('1.1.1.1', 80))\n    return 'connected'\n"
UNIX_SOCKET = "import socket\ndef f(x):\n    socket.socket(socket.AF_UNIX).connect('/var/run/docker.sock')\n"
FORK_BOMB = "import os\ndef f(x):\n    while True:\n        os.fork()\n"
MEMORY_HOG = "def f(x):\n    blocks = []\n    while True:\n        blocks.append(' ' * 10**6)\n"
SPIN = "def f(x):\n    while True:\n        pass\n"
SLEEP = "import time\ndef f(x):\n    time.sleep(600)\n"
OK = "def f(x):\n    return x + 1\n"


def write_outside(path: str) -> str:
    return f"def f(x):\n    with open({path!r}, 'w') as fh:\n        fh.write('escaped')\n    return 'written'\n"


@pytest.fixture(scope="module")
def worker():
    env = dict(os.environ, OPENAI_API_KEY="sk-secret-of-another-node", LAZYLLM_TEST_SECRET="hunter2")
    with LocalWorker(timeout=3, memory_mb=256, env=env) as w:
        yield w


def one_node(code: str, name: str = "n") -> dict:
    return dict(nodes=[dict(id="1", kind="Code", name=name, args=dict(code=code))], edges=[])


def run_graph(worker, code: str, name: str, value=1):
    graph = load_graph_strict(one_node(code, name))
    return Executor(graph, sandbox=worker.client(), code_limits={"timeout": 2}).run_result(value)


def assert_still_serving(worker) -> None:
    assert worker.client().call(OK, [41]) == 42
    assert worker.proc.poll() is None


def test_worker_reports_its_isolation(worker):
    info = worker.client().info()
    iso = info["isolation"]
    assert iso["socket_syscall"] == "denied"
    assert iso["processes"] == "threads only"
    if os.geteuid() == 0:
        assert iso["privileges"] in ("uid dropped", "root without capabilities")
        assert iso["network"] in ("namespace", "landlock", "seccomp")


@pytest.mark.parametrize("code", [SOCKET, UNIX_SOCKET], ids=["inet", "unix"])
def test_a_socket_is_refused_and_names_the_node(worker, code):
    result = run_graph(worker, code, "net")
    assert not result.ok
    text = str(result.error)
    assert text.startswith('node "1" (net) raised PermissionError'), text
    assert "no network" in result.error.hint
    assert_still_serving(worker)


@pytest.mark.parametrize("target", ["/tmp/lazyllm-graph-escape", str(ROOT / "lazyllm-graph-escape"),
                                    "/etc/lazyllm-graph-escape", "/dev/shm/lazyllm-graph-escape"])
def test_writing_outside_the_scratch_folder_is_refused(worker, target):
    wall = worker.client().info()["isolation"]["filesystem"]
    if wall in ("uid", "container") and target.startswith(("/tmp/", "/dev/shm/")):
        pytest.skip(f"no Landlock or mount namespace on this host (file system wall: {wall}); world-writable "
                    "folders are the sandbox container's business (read-only root)")
    result = run_graph(worker, write_outside(target), "writer")
    assert not result.ok
    assert str(result.error).startswith(('node "1" (writer) raised PermissionError',
                                         'node "1" (writer) raised OSError: [Errno 30] Read-only')), str(result.error)
    assert not os.path.exists(target)
    assert_still_serving(worker)


def test_the_scratch_folder_is_the_working_folder_and_lasts_for_a_run(worker):
    client = worker.client()
    here = client.call("import os\ndef f(x):\n    open('note.txt', 'w').write(x)\n    return os.getcwd()\n", ["hi"],
                       session="run-a")
    assert client.call("def f(x):\n    return open('note.txt').read()\n", [0], session="run-a") == "hi"
    with pytest.raises(SandboxCallError, match="No such file"):
        client.call("def f(x):\n    return open('note.txt').read()\n", [0], session="run-b")
    client.release("run-a")
    assert not os.path.exists(here)


def test_a_fork_bomb_is_stopped(worker):
    t0 = time.monotonic()
    result = run_graph(worker, FORK_BOMB, "bomb")
    assert not result.ok
    assert str(result.error).startswith('node "1" (bomb) raised PermissionError'), str(result.error)
    assert time.monotonic() - t0 < 10
    assert_still_serving(worker)


def test_unbounded_allocation_is_stopped(worker):
    result = run_graph(worker, MEMORY_HOG, "hog")
    assert not result.ok
    assert str(result.error).startswith('node "1" (hog) raised MemoryError: the code ran out of memory'), \
        str(result.error)
    assert_still_serving(worker)


@pytest.mark.parametrize("code", [SPIN, SLEEP], ids=["busy", "sleeping"])
def test_a_node_that_never_ends_is_stopped(worker, code):
    t0 = time.monotonic()
    result = run_graph(worker, code, "spin")
    assert not result.ok
    assert str(result.error) == 'node "1" (spin) was stopped: the code ran longer than the 2 s time limit'
    assert result.error.reason == "timeout"
    assert time.monotonic() - t0 < 8
    assert_still_serving(worker)


def test_the_worker_keeps_serving_while_one_call_runs_away(worker):
    client = worker.client()
    errors: list[Exception] = []

    def runaway() -> None:
        try:
            client.call(SPIN, [0], limits={"timeout": 2})
        except SandboxCallError as e:
            errors.append(e)
    t = threading.Thread(target=runaway)
    t.start()
    time.sleep(0.2)
    assert [client.call(OK, [i]) for i in range(5)] == [1, 2, 3, 4, 5]
    t.join(10)
    assert errors and errors[0].reason == "timeout"


def test_other_nodes_secrets_are_not_visible(worker):
    env = worker.client().call("import os\ndef f(x):\n    return dict(os.environ)\n", [0])
    assert "OPENAI_API_KEY" not in env and "LAZYLLM_TEST_SECRET" not in env
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                        "MKL_NUM_THREADS", "PYTHONDONTWRITEBYTECODE"}
    with pytest.raises(SandboxCallError):
        worker.client().call(f"def f(x):\n    return open('/proc/{worker.proc.pid}/environ').read()\n", [0])


def test_the_worker_cannot_be_killed_from_a_node(worker):
    with pytest.raises(SandboxCallError, match="Operation not permitted"):
        worker.client().call("import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n", [0])
    with pytest.raises(SandboxCallError, match="Operation not permitted"):
        worker.client().call("import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n", [0])
    assert_still_serving(worker)


def test_values_cross_the_boundary_losslessly(worker):
    code = "def f(x):\n    return [x, (1, 2), package(3, 4), {5: 'int key'}, {6}, b'\\x00\\xff', float('nan')]\n"
    value = worker.client().call(code, [{"a": (1, [2])}])
    assert value[0] == {"a": (1, [2])} and type(value[1]) is tuple and type(value[2]).__name__ == "Package"
    assert value[3] == {5: "int key"} and value[4] == {6} and value[5] == b"\x00\xff" and value[6] != value[6]
    with pytest.raises(SandboxCallError, match="cannot be passed between nodes") as info:
        worker.client().call("def f(x):\n    return object()\n", [0])
    assert info.value.reason == "unencodable"


def test_a_crashing_node_is_reported(worker):
    with pytest.raises(SandboxCallError, match="exited without a result"):
        worker.client().call("import os\ndef f(x):\n    os._exit(3)\n", [0])
    with pytest.raises(SandboxCallError, match="SystemExit"):
        worker.client().call("import sys\ndef f(x):\n    sys.exit(2)\n", [0])
    assert_still_serving(worker)


def test_one_shot_cli_reports_the_runaway_node(tmp_path, worker):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(one_node(SPIN, "spin")), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "lazyllm_images.runtime.graph", "run", str(path), "--input", "1",
                           "--sandbox", worker.socket_path], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert 'error: node "1" (spin) was stopped: the code ran longer than the 3 s time limit' in proc.stderr
    assert "hint: Code nodes run in a sandbox" in proc.stderr


def _drop_all_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)
    libc.capset(ctypes.create_string_buffer(b"\x22\x05\x08\x20\x00\x00\x00\x00", 8), ctypes.create_string_buffer(24))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a root worker without capabilities")
def test_root_worker_without_capabilities_still_confines():
    """Like a container started as root with every capability dropped: no uid switch, no namespaces."""
    with LocalWorker(timeout=2, preexec=_drop_all_capabilities) as w:
        info = w.client().info()["isolation"]
        assert info["privileges"] == "root without capabilities"
        assert info["network"] != "namespace"
        c = w.client()
        assert c.call(OK, [1]) == 2
        for code in (SOCKET, FORK_BOMB, write_outside("/tmp/lazyllm-graph-escape-2")):
            with pytest.raises(SandboxCallError, match="Operation not permitted|Permission denied"):
                c.call(code, [0])
        with pytest.raises(SandboxCallError) as info:
            c.call(SPIN, [0])
        assert info.value.reason == "timeout"
        assert c.call(OK, [2]) == 3


def _python_for_nobody() -> str | None:
    """An interpreter uid 65534 can run: this one, or the system's (the sandbox needs only the standard library)."""
    def readable(python: str) -> bool:
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
        return os.path.exists(python) and readable_by_others(os.path.dirname(os.path.realpath(python))) and \
            readable_by_others(prefix)
    if readable(sys.executable) and readable_by_others(sys.prefix) and readable_by_others(sys.base_prefix):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if readable(candidate):
            version = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 10))"],
                                     capture_output=True, text=True).stdout.strip()
            if version == "True":
                return candidate
    return None


NOBODY_PYTHON = _python_for_nobody() if os.geteuid() == 0 else None


@pytest.mark.skipif(NOBODY_PYTHON is None or not readable_by_others(str(ROOT)),
                    reason="needs root to switch to uid 65534, and a Python installation that uid can read")
def test_non_root_worker():
    """The worker as the sandbox container runs it: non-root, so no uid switch and no namespaces; resource limits,
    seccomp and Landlock still apply."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), SECRET_TOKEN="s3cret")
    with LocalWorker(timeout=2, memory_mb=128, user=65534, python=NOBODY_PYTHON, env=env) as w:
        c = w.client()
        info = c.info()
        assert info["uid"] == 65534 and info["isolation"]["privileges"] == "unprivileged worker"
        assert c.call(OK, [1]) == 2
        assert "SECRET_TOKEN" not in c.call("import os\ndef f(x):\n    return dict(os.environ)\n", [0])
        for code in (SOCKET, FORK_BOMB):
            with pytest.raises(SandboxCallError, match="Operation not permitted"):
                c.call(code, [0])
        with pytest.raises(SandboxCallError, match="Permission denied"):
            c.call(write_outside("/tmp/lazyllm-graph-escape-3"), [0])
        with pytest.raises(SandboxCallError, match="out of memory"):
            c.call(MEMORY_HOG, [0])
        with pytest.raises(SandboxCallError, match="Operation not permitted"):
            c.call(f"import os, signal\ndef f(x):\n    os.kill({w.proc.pid}, signal.SIGKILL)\n", [0])
        with pytest.raises(SandboxCallError) as stopped:
            c.call(SPIN, [0])
        assert stopped.value.reason == "timeout"
        assert c.call(OK, [2]) == 3


def test_no_worker_is_a_clear_node_error(tmp_path):
    graph = load_graph_strict(one_node(OK, "lonely"))
    result = Executor(graph, sandbox=SandboxClient(str(tmp_path / "nothing.sock"))).run_result(1)
    assert not result.ok
    assert str(result.error).startswith('node "1" (lonely) raised SandboxUnavailable: no sandbox worker at')


def test_temporary_files_go_to_the_scratch_folder(worker):
    path = worker.client().call("import tempfile\ndef f(x):\n    fd, p = tempfile.mkstemp()\n    return p\n", [0])
    assert path.startswith(worker.client().info()["scratch"])


@pytest.mark.skipif(os.geteuid() != 0, reason="the read-only mount namespace needs root")
def test_without_landlock_root_uses_a_read_only_mount_namespace():
    with LocalWorker(timeout=2, extra_args=["--no-landlock"]) as w:
        c = w.client()
        if c.info()["isolation"]["filesystem"] != "read-only mount namespace":
            pytest.skip("this host refuses mount namespaces (no CAP_SYS_ADMIN)")
        with pytest.raises(SandboxCallError, match="Read-only file system"):
            c.call(write_outside("/tmp/lazyllm-graph-escape-4"), [0])
        assert not os.path.exists("/tmp/lazyllm-graph-escape-4")
        assert c.call("def f(x):\n    open('here.txt', 'w').write(x)\n    return open('here.txt').read()\n",
                      ["kept"]) == "kept"
        with pytest.raises(SandboxCallError, match="Operation not permitted"):
            c.call(SOCKET, [0])
