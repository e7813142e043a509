"""Layers shared through a real registry (docker-registry on loopback), and secrets that never reach an image."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
import uuid

import pytest

from bridge import bridge_gateway
from recipe_helpers import unique_mark, write_groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path, docker_client):
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"127.0.0.1:{port}/team"
    proc.terminate()
    proc.wait(timeout=10)
    for image in docker_client.images.list():                # untag what pointed at this throwaway registry
        for tag in image.tags:
            if tag.startswith(f"127.0.0.1:{port}/"):
                docker_client.images.remove(tag)


def test_push_then_pull_instead_of_building(lazyllm, registry, docker_client):
    first = json.loads(lazyllm("install", "tiny-a", "--registry", registry, "--push", "--json").stdout)
    assert any(p.endswith(first["layers"][1]["image"]) for p in first["pushed"])
    for layer in first["layers"][1:]:                        # drop the group and runtime layers locally
        docker_client.images.remove(layer["image"], force=True)
    docker_client.images.remove(first["stack"], force=True)
    again = lazyllm("install", "tiny-a", "--registry", registry, "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    hows = {x["name"]: x["how"] for x in json.loads(again.stdout)["layers"]}
    assert hows["group-tiny-a"] == "pulled" and hows["runtime"] == "pulled" and hows["python"] == "cached"


def test_offline_never_touches_the_registry(lazyllm, docker_client):
    out = lazyllm("install", "tiny-a", "--registry", "127.0.0.1:9/none", "--offline", "--json")
    assert out.returncode == 0, out.stderr[-2000:]


class _Index(http.server.BaseHTTPRequestHandler):
    seen_auth: list[str] = []

    def do_GET(self):  # noqa: N802 - an empty package index that records the credentials it is sent
        _Index.seen_auth.append(self.headers.get("Authorization", ""))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_secrets_reach_the_build_but_never_the_image(lazyllm, test_recipes, tmp_path, docker_client):
    token = f"tok-{uuid.uuid4().hex}"
    ca_marker = f"LAZYLLM-TEST-CA-{uuid.uuid4().hex}"
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(open(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")).read()
                      + f"\n# {ca_marker}\n")
    gateway = bridge_gateway(docker_client)
    server = http.server.ThreadingHTTPServer((gateway, 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    group = f"tiny-secret-{unique_mark()}"
    write_groups(test_recipes, {group: {"order": 75, "packages": ["six==1.16.0"], "commands": [f"echo {group}"]}})
    env = {"LAZYLLM_CA_BUNDLE": str(bundle),
           "PIP_EXTRA_INDEX_URL": f"http://user:{token}@{gateway}:{server.server_port}/simple",
           "PIP_TRUSTED_HOST": gateway}
    try:
        result = lazyllm("install", group, "--json", env=env)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-2000:]
    assert any(a.startswith("Basic ") for a in _Index.seen_auth), "the credential never reached pip in the build"
    data = json.loads(result.stdout)
    image = docker_client.images.get(data["image"])
    saved = b"".join(image.save())
    needles = [token.encode(), ca_marker.encode()]
    assert not any(n in saved for n in needles)
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:      # layer tars inside the save are uncompressed
        for member in tar.getmembers():
            if member.isfile():
                blob = tar.extractfile(member).read()
                assert not any(n in blob for n in needles), member.name
    history = json.dumps(image.history())
    assert token not in history and ca_marker not in history
    assert token not in json.dumps(image.labels) and ca_marker not in json.dumps(image.attrs)
