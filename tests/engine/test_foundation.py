"""The foundation against a real engine: the offline base, doctor, errors when the engine is away."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LAZYLLM = [sys.executable, "-m", "lazyllm_images"]


def lazyllm(*args, env=None, **kw):
    return subprocess.run([*LAZYLLM, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, **kw)


def test_offline_base_runs_a_container(docker_client, offline_base):
    img = docker_client.images.get(offline_base)
    assert img.labels["org.lazyllm.managed"] == "true"
    assert img.labels["org.lazyllm.kind"] == "base" and img.labels["org.lazyllm.base"] == "offline"
    out = docker_client.containers.run(offline_base, ["cat", "/etc/debian_version"], remove=True,
                                       labels={"org.lazyllm.test-run": os.environ["LAZYLLM_TEST_RUN"]})
    assert out.decode().strip().startswith("12.")


def test_bootstrap_is_idempotent(offline_base, docker_client):
    before = docker_client.images.get(offline_base).id
    out = lazyllm("images", "bootstrap")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"exists: {offline_base}"
    assert docker_client.images.get(offline_base).id == before


def test_doctor_json_on_a_gpu_less_host():
    out = lazyllm("doctor", "--json")
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert out.returncode == 0 and report["ok"] is True, out.stdout
    assert checks["engine"]["status"] == "ok" and checks["engine"]["data"]["api_version"]
    assert checks["buildkit"]["status"] == "ok"
    nvidia = checks["nvidia"]
    if not nvidia["data"]["present"]:
        assert nvidia["status"] == "ok" and "no NVIDIA GPU" in nvidia["summary"]
        assert checks["gpu-runtime"]["status"] == "ok"
    assert checks["disk"]["data"]["free_gib"] > 0


def test_images_lists_the_base(offline_base):
    out = lazyllm("images", "--json")
    assert out.returncode == 0
    tags = [t for row in json.loads(out.stdout)["layers"] for t in row["tags"]]
    assert offline_base in tags


def test_engine_unreachable_is_one_error_line_with_a_hint(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    for args in (("ps",), ("images",), ("images", "bootstrap")):
        out = lazyllm(*args, env=env)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1, out
        assert lines[0].startswith("error: cannot reach the Docker engine"), out.stderr
        assert lines[1].startswith("hint: ") and "make engine" in lines[1]
        assert "Traceback" not in out.stderr
    out = lazyllm("doctor", "--json", env=env)
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["ok"] is False
    assert {c["name"]: c["status"] for c in report["checks"]}["engine"] == "fail"


def test_ps_and_stop_touch_only_our_containers(docker_client, offline_base):
    foreign = docker_client.containers.run(offline_base, ["sleep", "60"], detach=True, name=None,
                                           labels={"org.lazyllm.test-run": os.environ["LAZYLLM_TEST_RUN"]})
    try:
        out = lazyllm("ps", "--json", "--all")
        assert out.returncode == 0
        assert foreign.name not in json.dumps(json.loads(out.stdout))
        out = lazyllm("stop", foreign.name)
        assert out.returncode == 2 and "no service named" in out.stderr
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)
