"""LaunchSpec and GpuRequest: parsing, validation, hardened defaults."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyllm_images.errors import UsageError
from lazyllm_images.launch.spec import (GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec, labels_from_env,
                                        service_labels)

UUID = "GPU-11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("text,kind,count,devices", [
    (None, "auto", 0, ()), ("", "auto", 0, ()), ("auto", "auto", 0, ()), ("none", "none", 0, ()),
    ("all", "all", 0, ()), ("ALL", "all", 0, ()), ("2", "count", 2, ()), ("count=3", "count", 3, ()),
    ("0,1", "devices", 0, ("0", "1")), ("device=0", "devices", 0, ("0",)), ("device=1,3", "devices", 0, ("1", "3")),
    ("0, 02", "devices", 0, ("0", "2")),
    (UUID, "devices", 0, (UUID,)), (f"{UUID},GPU-abc", "devices", 0, (UUID, "GPU-abc")),
    ("MIG-GPU-aaaa/1/0", "devices", 0, ("MIG-GPU-aaaa/1/0",)),
    ("0:1", "devices", 0, ("0:1",)), ("device=0:1", "devices", 0, ("0:1",)), ("00:01,1", "devices", 0, ("0:1", "1")),
    ("MIG-0f4a6c4e-5a7e-5c2b", "devices", 0, ("MIG-0f4a6c4e-5a7e-5c2b",)),
    ("device=MIG-aaaa,0:2", "devices", 0, ("MIG-aaaa", "0:2")),
])
def test_parse_forms(text, kind, count, devices):
    req = GpuRequest.parse(text)
    assert (req.kind, req.count, req.devices) == (kind, count, devices)
    assert req.capabilities == ("compute", "utility") and req.vendor == "nvidia"


@pytest.mark.parametrize("text", ["0", "-1", "two", "0,x", "0,0", "device=", "GPU", "1.5", "count=a", "0,,1",
                                  "0:", ":1", "0:1:2", "0:1,00:1", "MIG"])
def test_parse_rejects(text):
    with pytest.raises(UsageError) as err:
        GpuRequest.parse(text)
    assert err.value.hint


def test_zero_says_what_to_write_instead():
    with pytest.raises(UsageError, match="ambiguous") as err:
        GpuRequest.parse("0")
    assert "none" in err.value.hint and "device=0" in err.value.hint


def test_size_and_wants_gpu():
    assert GpuRequest.parse("none").size == 0 and not GpuRequest.parse("none").wants_gpu
    assert GpuRequest.parse("all").size is None and GpuRequest.parse("all").wants_gpu
    assert GpuRequest.parse("3").size == 3 and GpuRequest.parse("1,2").size == 2
    assert not GpuRequest.parse(None).wants_gpu


def test_with_capabilities_adds_once():
    req = GpuRequest.parse("all").with_capabilities("video", "compute", "video")
    assert req.capabilities == ("compute", "utility", "video")


def test_inconsistent_requests_are_refused():
    with pytest.raises(ValueError):
        GpuRequest("count", count=0)
    with pytest.raises(ValueError):
        GpuRequest("devices")
    with pytest.raises(ValueError):
        GpuRequest("all", vendor="intel")


index_lists = st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True).map(lambda xs: [str(x) for x in xs])
uuid_lists = st.lists(st.from_regex(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}", fullmatch=True), min_size=1, max_size=4,
                      unique=True)
requests = st.one_of(
    st.just(GpuRequest.none()), st.just(GpuRequest.all()),
    st.integers(1, 64).map(lambda n: GpuRequest("count", count=n)),
    st.one_of(index_lists, uuid_lists).map(lambda ids: GpuRequest("devices", devices=tuple(ids))))


@given(requests)
def test_to_arg_parses_back(req):
    assert GpuRequest.parse(req.to_arg()) == req


@given(st.text(max_size=20))
def test_parse_never_crashes_on_junk(text):
    try:
        req = GpuRequest.parse(text)
    except UsageError:
        return
    assert req.kind in ("auto", "none", "all", "count", "devices")


def spec(**kw) -> LaunchSpec:
    return LaunchSpec(**{"name": "svc", "image": "img:1", **kw})


def test_hardened_defaults():
    s = spec()
    assert s.cap_drop == ("ALL",) and s.security_opt == ("no-new-privileges",) and s.init
    assert s.user == "10001:10001" and not s.gpus.wants_gpu and not s.ipc_host


def test_model_mounts_are_read_only():
    with pytest.raises(ValueError, match="read-only"):
        MountSpec("bind", "/model", "/srv/m", purpose="model")
    assert MountSpec("bind", "/model", "/srv/m", read_only=True, purpose="model").read_only


@pytest.mark.parametrize("kw,match", [
    ({"name": "-bad"}, "container name"), ({"role": "nope"}, "role"), ({"image": ""}, "image"),
    ({"env": {"HF_TOKEN": "x"}}, "secret"), ({"env": {"MY_API_KEY": "x"}}, "secret"), ({"env": {"1A": "x"}}, "name"),
    ({"ports": (PortSpec("api", 1), PortSpec("api", 2))}, "port names"),
    ({"mounts": (MountSpec("tmpfs", "/tmp"), MountSpec("volume", "/tmp", "v"))}, "target"),
    ({"shm_size": "lots"}, "shm size"), ({"shm_size": "1g", "ipc_host": True}, "exclude"),
    ({"restart": "sometimes"}, "restart"), ({"depends_on": ("svc",)}, "itself"),
])
def test_spec_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        spec(**kw)


@pytest.mark.parametrize("kw", [
    {"kind": "nfs", "target": "/x", "source": "s"}, {"kind": "bind", "target": "rel", "source": "/s"},
    {"kind": "bind", "target": "/x", "source": "rel"}, {"kind": "volume", "target": "/x"},
])
def test_mount_validation(kw):
    with pytest.raises(ValueError):
        MountSpec(**kw)


def test_port_validation():
    with pytest.raises(ValueError):
        PortSpec("api", 0)
    with pytest.raises(ValueError):
        PortSpec("api", 80, 70000)
    with pytest.raises(ValueError):
        PortSpec("api", 80, protocol="sctp")


def test_spec_is_frozen_and_replaceable():
    s = spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"
    assert dataclasses.replace(s, name="other").name == "other"


def test_port_lookup():
    s = spec(ports=(PortSpec("api", 8000), PortSpec("chat", 8080, 20500)))
    assert s.port("chat").host_port == 20500
    with pytest.raises(KeyError):
        s.port("sse")


def test_healthcheck_probe_ignores_proxies():
    hc = HealthCheck("/health", 8000)
    cmd = hc.command()
    assert cmd[:2] == ("python3", "-c") and "ProxyHandler({})" in cmd[2] and hc.url in cmd[2]


def test_labels():
    labels = service_labels("svc", "model", framework="vllm", model_dir=None, gpus="0,1")
    assert labels == {"org.lazyllm.managed": "true", "org.lazyllm.kind": "service", "org.lazyllm.service": "svc",
                      "org.lazyllm.role": "model", "org.lazyllm.framework": "vllm", "org.lazyllm.gpus": "0,1"}
    assert labels_from_env("org.lazyllm.test-run=abc, x=1,junk") == {"org.lazyllm.test-run": "abc", "x": "1"}
    assert labels_from_env(None) == {}
