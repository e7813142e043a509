"""docker-py kwargs and ``docker run`` argv from one LaunchSpec.

docker-py itself checks the kwargs here: ``containers.create`` runs all the way to the Engine API request body
(``create_container_from_config`` is the only thing replaced), with no engine involved.
"""

from __future__ import annotations

import shlex

import docker
import pytest

from lazyllm_images.launch import docker as render
from lazyllm_images.launch.spec import (GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec, Ulimit,
                                        scratch_mount)


class _Captured(Exception):
    def __init__(self, config, name):
        super().__init__("captured")
        self.config, self.name = config, name


def engine_config(kwargs: dict) -> dict:
    """The Engine API body docker-py would POST to /containers/create for these kwargs."""
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")

    def capture(config, name=None, platform=None):
        raise _Captured(config, name)

    client.api.create_container_from_config = capture
    client.api._proxy_configs = docker.utils.proxy.ProxyConfig()       # ignore ~/.docker/config.json
    kwargs = dict(kwargs)
    image, command = kwargs.pop("image"), kwargs.pop("command", None)
    with pytest.raises(_Captured) as got:
        client.containers.create(image, command, **kwargs)
    return {**got.value.config, "_name": got.value.name}


def full_spec(**kw) -> LaunchSpec:
    base = dict(
        name="svc", image="img:1", command=("serve", "--port", "8000"), env={"A": "1", "B": "x y"},
        ports=(PortSpec("api", 8000, None), PortSpec("chat", 8080, 20500, "0.0.0.0"),
               PortSpec("dns", 53, 5353, "::1", "udp")),
        mounts=(MountSpec("bind", "/model", "/srv/my,model", read_only=True, purpose="model"),
                MountSpec("volume", "/cache", "lazyllm-cache"), scratch_mount()),
        gpus=GpuRequest.parse("0,1"), shm_size="8g", ulimits=(Ulimit("memlock", -1, -1),),
        labels={"org.lazyllm.managed": "true"}, cap_add=("SYS_NICE",), read_only_rootfs=True,
        healthcheck=HealthCheck("/health", 8000), network="lazyllm-net", devices=("/dev/fuse",),
        group_add=("44",), working_dir="/work", stdin_open=True, restart="on-failure")
    base.update(kw)
    return LaunchSpec(**base)


def test_docker_py_accepts_the_kwargs():
    config = engine_config(render.container_kwargs(full_spec()))
    host = config["HostConfig"]
    assert config["_name"] == "svc" and config["Image"] == "img:1" and config["Cmd"] == ["serve", "--port", "8000"]
    assert set(config["Env"]) == {"A=1", "B=x y", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"}
    assert config["User"] == "10001:10001" and config["WorkingDir"] == "/work" and config["OpenStdin"]
    assert config["Labels"] == {"org.lazyllm.managed": "true"}
    assert config["Healthcheck"]["Test"][0] == "CMD-SHELL" and config["Healthcheck"]["StartPeriod"] == 600 * 10**9
    assert host["DeviceRequests"] == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0", "1"],
                                       "Capabilities": [["gpu"]], "Options": {}}]
    assert host["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                                    "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "20500"}],
                                    "53/udp": [{"HostIp": "::1", "HostPort": "5353"}]}
    assert host["Mounts"][0] == {"Type": "bind", "Source": "/srv/my,model", "Target": "/model", "ReadOnly": True}
    assert host["Tmpfs"] == {"/tmp": "rw,exec,nosuid,nodev,mode=1777"}
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["SYS_NICE"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["ReadonlyRootfs"] and host["Init"]
    assert host["ShmSize"] == 8 * 1024**3 and host["Ulimits"] == [{"Name": "memlock", "Soft": -1, "Hard": -1}]
    assert host["Devices"] == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                "CgroupPermissions": "rwm"}]
    assert host["GroupAdd"] == ["44"] and host["NetworkMode"] == "lazyllm-net"
    assert host["RestartPolicy"] == {"Name": "on-failure"}


def test_argv_matches_the_kwargs():
    argv = render.run_argv(full_spec())
    text = shlex.join(argv)
    assert argv[:2] == ["docker", "run"] and argv[-4:] == ["img:1", "serve", "--port", "8000"]
    for piece in ["--publish 127.0.0.1::8000", "--publish 0.0.0.0:20500:8080", "--publish '[::1]:5353:53/udp'",
                  "--mount 'type=bind,\"source=/srv/my,model\",target=/model,readonly'",
                  "--mount type=volume,source=lazyllm-cache,target=/cache",
                  "--tmpfs /tmp:rw,exec,nosuid,nodev,mode=1777", "--gpus '\"device=0,1\"'", "--shm-size 8g",
                  "--ulimit memlock=-1:-1", "--cap-drop ALL", "--cap-add SYS_NICE",
                  "--security-opt no-new-privileges", "--read-only", "--init", "--network lazyllm-net",
                  "--device /dev/fuse", "--group-add 44", "--workdir /work", "--interactive",
                  "--restart on-failure", "--env 'B=x y'", "--user 10001:10001", "--health-start-period 600s"]:
        assert piece in text, piece


def test_mount_flag_reads_back_as_csv():
    import csv
    argv = render.run_argv(full_spec(mounts=(MountSpec("bind", "/a", '/srv/x,"y"', read_only=True),)))
    (fields,) = csv.reader([argv[argv.index("--mount") + 1]])
    assert fields == ["type=bind", 'source=/srv/x,"y"', "target=/a", "readonly"]


def test_health_cmd_is_the_same_text_in_both():
    spec = full_spec()
    kw = render.container_kwargs(spec)
    argv = render.run_argv(spec)
    assert argv[argv.index("--health-cmd") + 1] == kw["healthcheck"]["test"][1]
    assert shlex.split(kw["healthcheck"]["test"][1]) == list(spec.healthcheck.command())


def test_minimal_spec():
    spec = LaunchSpec(name="m", image="i", user=None, cap_drop=(), security_opt=(), init=False)
    assert render.run_argv(spec) == ["docker", "run", "--name", "m", "--detach", "--env",
                                     "NVIDIA_VISIBLE_DEVICES=void", "i"]
    assert render.container_kwargs(spec) == {"image": "i", "name": "m", "detach": True,
                                              "environment": {"NVIDIA_VISIBLE_DEVICES": "void"}}
    engine_config(render.container_kwargs(spec))


def test_entrypoint():
    spec = LaunchSpec(name="m", image="i", entrypoint=("tini", "--"), command=("serve",))
    argv = render.run_argv(spec)
    assert argv[argv.index("--entrypoint") + 1] == "tini" and argv[-3:] == ["i", "--", "serve"]
    config = engine_config(render.container_kwargs(spec))
    assert config["Entrypoint"] == ["tini", "--"] and config["Cmd"] == ["serve"]


def test_cdi_mode_and_ipc_host():
    spec = full_spec(gpus=GpuRequest.parse("all"), shm_size=None, ipc_host=True)
    kw = render.container_kwargs(spec, gpu_mode="cdi")
    assert kw["device_requests"] == [{"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"]}]
    assert kw["ipc_mode"] == "host"
    text = render.dry_run_text(spec, gpu_mode="cdi")
    assert "--device nvidia.com/gpu=all" in text and "--ipc host" in text and "--gpus" not in text
    config = engine_config(kw)
    assert config["HostConfig"]["DeviceRequests"][0]["Driver"] == "cdi"


def test_amd_devices_and_group_ids():
    spec = full_spec(gpus=GpuRequest.parse("all", "amd"), group_add=("44",))
    gids = {"/dev/kfd": (109,), "/dev/dri": (44, 109)}
    kw = render.container_kwargs(spec, gids=gids)
    assert kw["devices"] == ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm", "/dev/fuse:/dev/fuse:rwm"]
    assert kw["group_add"] == ["109", "44"] and "device_requests" not in kw
    argv = render.run_argv(spec, gids=gids)
    assert argv.count("--group-add") == 2 and argv.count("--device") == 3
    engine_config(kw)


ASCEND = dict(gpus=GpuRequest("devices", devices=("0",), vendor="ascend"), group_add=())


def test_ascend_groups_by_the_device_files_number():
    """The image's /etc/group may lack HwHiAiUser: the group owning /dev/davinci* on the host goes by number."""
    gids = {"/dev/davinci0": (1001,), "/dev/davinci_manager": (1001,), "/dev/hisi_hdc": (0,)}
    kw = render.container_kwargs(full_spec(**ASCEND), gids=gids)
    argv = render.run_argv(full_spec(**ASCEND), gids=gids)
    assert kw["group_add"] == ["1001"] and argv[argv.index("--group-add") + 1] == "1001"
    assert "HwHiAiUser" not in argv and engine_config(kw)["HostConfig"]["GroupAdd"] == ["1001"]


def test_absent_optional_mounts_are_left_out():
    """/usr/local/dcmi and npu-smi are optional: a missing one is not a bind the engine would refuse."""
    absent = {"/usr/local/dcmi", "/usr/local/sbin/npu-smi"}
    def exists(path):
        return path not in absent
    spec = full_spec(**ASCEND)
    targets = [m["Target"] for m in render.container_kwargs(spec, path_exists=exists)["mounts"]]
    assert "/usr/local/Ascend/driver" in targets and "/etc/ascend_install.info" in targets
    assert not absent & set(targets)
    text = render.dry_run_text(spec, path_exists=exists)
    assert "/usr/local/dcmi" not in text and "source=/usr/local/Ascend/driver" in text
    everything = render.container_kwargs(spec, path_exists=lambda path: True)["mounts"]
    assert {m["Target"] for m in everything} >= absent
    gone = render.container_kwargs(spec, path_exists=lambda path: False)["mounts"]     # required mounts stay
    assert "/usr/local/Ascend/driver" in [m["Target"] for m in gone] and "/model" in [m["Target"] for m in gone]


@pytest.mark.parametrize("text", ["0:1", "MIG-0f4a6c4e-5a7e", "device=0:1,MIG-0f4a6c4e-5a7e"])
def test_mig_devices(text):
    spec = full_spec(gpus=GpuRequest.parse(text))
    ids = list(spec.gpus.devices)
    kw = render.container_kwargs(spec)
    assert kw["device_requests"] == [{"driver": "nvidia", "capabilities": [["gpu"]], "device_ids": ids}]
    assert engine_config(kw)["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ids
    assert f"--gpus '\"device={','.join(ids)}\"'" in render.dry_run_text(spec)
    cdi = render.container_kwargs(spec, gpu_mode="cdi")["device_requests"]
    assert cdi == [{"driver": "cdi", "device_ids": [f"nvidia.com/gpu={i}" for i in ids]}]


def test_ascend_driver_mounts_join_the_spec_mounts():
    spec = full_spec(gpus=GpuRequest("devices", devices=("0",), vendor="ascend"))
    kw = render.container_kwargs(spec)
    targets = [m["Target"] for m in kw["mounts"]]
    assert "/usr/local/Ascend/driver" in targets and kw["group_add"] == ["HwHiAiUser", "44"]
    assert "/dev/davinci0:/dev/davinci0:rwm" in kw["devices"]
