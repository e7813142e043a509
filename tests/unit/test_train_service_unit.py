"""``lazyllm run training_service``: the controller's unit (what its container holds and nothing more, shared with
infer_service through services.controller_unit), the jobs' unit (no network, the model read-only, its own
volume, the devices it was given), the controller's flags and the CLI's parsing. No engine here."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lazyllm_images import host
from lazyllm_images.errors import UsageError
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.launch.docker import container_kwargs
from lazyllm_images.requests import BuildOptions, LaunchOptions, TrainServiceRequest
from lazyllm_images.runtime.controller.records import Record
from lazyllm_images.runtime.train import __main__ as cli
from lazyllm_images.runtime.train.job_launcher import TrainLauncher
from lazyllm_images.services import train

CPU = HostFacts(nvidia=NvidiaFacts(False, "no NVIDIA driver"))
GPUS = HostFacts(nvidia=NvidiaFacts(True, "", "550.54.15", "12.4", (
    Gpu(0, "GPU-a", "NVIDIA H100", 81559, "9.0"), Gpu(1, "GPU-b", "NVIDIA H100", 81559, "9.0"))))
ALICE = "alice-0c1e2d5f7a9b8c6d4e3f"
OFFLINE = BuildOptions(base="offline")


@pytest.fixture
def described(tmp_path, monkeypatch):
    models, data = tmp_path / "models", tmp_path / "data"
    for folder in (models, data):
        folder.mkdir()
        folder.chmod(0o777 if folder == models else 0o755)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE}\n")
    monkeypatch.setattr(host, "host_facts", lambda: CPU)
    monkeypatch.setattr(train, "engine_socket", lambda dry_run=False, command="": ("/run/docker.sock", 105))
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))

    def make(**kw):
        launch = LaunchOptions(dry_run=True, **kw.pop("launch", {}))
        request = TrainServiceRequest(models=(str(models),), data=(str(data),), token_file=str(tokens),
                                      launch=launch, build=OFFLINE, **kw)
        return train.describe(request)
    make.models, make.data = models, data
    return make


def test_the_controller_holds_only_what_it_needs(described) -> None:
    found = described()
    (unit,) = found.service.units
    spec = unit.spec
    assert found.service.name == "lazyllm-train" and spec.name == "lazyllm-train-controller"
    assert spec.role == "training" and spec.user == "10001:10001" and spec.cap_drop == ("ALL",)
    assert spec.read_only_rootfs and spec.group_add == ("105",) and spec.gpus.kind == "none"
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/var/lib/lazyllm"].source == "lazyllm-train-state"
    assert mounts["/models/0"].source == str(described.models) and mounts["/models/0"].read_only
    assert mounts["/data/0"].source == str(described.data) and mounts["/data/0"].read_only
    writable = {m.target for m in spec.mounts if not m.read_only}
    assert writable == {"/var/run/docker.sock", "/var/lib/lazyllm", "/tmp"}
    assert spec.ports[0].host_port == 31341 and spec.ports[0].host_ip == "127.0.0.1"
    cmd = list(spec.command)
    assert cmd[:3] == ["python3", "-m", "lazyllm_images.runtime.train"]
    assert cmd[cmd.index("--models") + 1] == f"{described.models}=/models/0"
    assert cmd[cmd.index("--data") + 1] == f"{described.data}=/data/0"
    assert cmd[cmd.index("--gpus") + 1] == "none" and cmd[cmd.index("--base") + 1] == "offline"
    assert cmd[cmd.index("--token-file") + 1] == train.TOKENS_TARGET
    assert unit.secrets["files"] == {train.TOKENS_TARGET: f"{ALICE}\n"}
    assert ALICE not in json.dumps([container_kwargs(spec), unit.files])
    assert found.jobs.top.ref.startswith("lazyllm/") and "finetune" in found.jobs.stack_tag


def test_on_an_nvidia_host_every_gpu_is_the_controllers_to_hand_out(described, monkeypatch) -> None:
    monkeypatch.setattr(host, "host_facts", lambda: GPUS)
    found = described()
    cmd = list(found.service.units[0].spec.command)
    assert cmd[cmd.index("--gpus") + 1] == "0,1" and found.gpus == (0, 1)
    assert found.service.units[0].spec.gpus.kind == "none"           # the controller itself never holds a GPU
    cuda = train.describe(TrainServiceRequest(launch=LaunchOptions(dry_run=True)))
    assert cuda.jobs.accelerator == "nvidia"                          # the jobs' stack is the CUDA one
    assert described(gpus="1").gpus == (0,)


def test_bad_settings_are_refused(described, tmp_path) -> None:
    with pytest.raises(UsageError, match="this host has no NVIDIA GPU"):
        described(gpus="2")
    described.models.chmod(0o755)                          # exports are written there as uid 10001
    with pytest.raises(UsageError, match="exports are written there") as err:
        described()
    assert f"chmod a+rwx {described.models}" in err.value.hint
    with pytest.raises(UsageError, match="--data .*: no such folder"):
        train.describe(TrainServiceRequest(data=(str(tmp_path / "nope"),), launch=LaunchOptions(dry_run=True)))
    with pytest.raises(UsageError, match="this host's Docker engine"):
        train.run(TrainServiceRequest(launch=LaunchOptions(target="swarm", dry_run=True)))


def test_a_generated_token_is_kept_per_state_volume(described, tmp_path) -> None:
    found = train.tokens_for(TrainServiceRequest(), "lazyllm-train-state", dry_run=False, kind="train")
    assert found.generated and found.where == tmp_path / "home" / "train" / "lazyllm-train-state.token"


def test_the_jobs_unit(tmp_path, monkeypatch) -> None:
    from lazyllm_images.services import start
    monkeypatch.setattr(start, "gpu_mode", lambda units, dry_run=False: "runtime")    # no engine to ask
    record = Record("train", "owner", "ft-261206120000000000-abcde",
                    {"model": "tiny", "model_host": "/srv/models/tiny", "stage": "sft", "name": "n",
                     "training_args": {}, "data_dir": str(tmp_path)}, gpus=2, devices=[1, 3])
    (tmp_path / "train.jsonl").write_text('{"prompt": [], "completion": []}\n')
    launcher = TrainLauncher("inst", image="lazyllm/runtime:finetune")
    service, handle = launcher.describe(record)
    (unit,) = service.units
    spec = unit.spec
    assert unit.job and spec.network == "none" and spec.read_only_rootfs and spec.user == "10001:10001"
    assert spec.gpus.kind == "devices" and spec.gpus.devices == ("1", "3")
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/model"].source == "/srv/models/tiny" and mounts["/model"].read_only
    assert mounts["/var/lib/lazyllm"].kind == "volume" and mounts["/var/lib/lazyllm"].source == handle["volume"]
    assert handle["volume"] == f"{record.unit_name}-work" and handle["container"] == record.unit_name
    assert spec.labels["org.lazyllm.record"] == record.uid and spec.labels["org.lazyllm.controller"] == "inst"
    assert spec.labels["org.lazyllm.kind"] == "service" and spec.labels["org.lazyllm.role"] == "training"
    assert list(spec.command[-4:]) == ["--work", "/var/lib/lazyllm", "--model", "/model"]
    files = launcher.job_files(record)
    assert set(files) == {"job.json", "data/train.jsonl"} and json.loads(files["job.json"])["stage"] == "sft"
    cpu_record = replace(record, gpus=0, devices=[])
    assert launcher.describe(cpu_record)[0].units[0].spec.gpus.kind == "none"


def test_controller_flags(tmp_path) -> None:
    args = cli.parse_args(["--db", str(tmp_path / "t.db"), "--models", "/srv/m=/models/0", "--data", "/srv/d",
                           "--gpus", "0,2", "--cpu-jobs", "2", "--base", "offline"])
    assert args.port == 31341 and args.gpus == (0, 2) and args.cpu_jobs == 2 and args.base == "offline"
    assert [(r.host, r.inner) for r in args.models] == [("/srv/m", "/models/0")] and args.data[0].inner == "/srv/d"
    for bad in (["--models", "relative"], ["--gpus", "x"], ["--pause-grace", "0"]):
        with pytest.raises(SystemExit):
            cli.parse_args(["--db", str(tmp_path / "t.db"), *bad])


def test_build_tells_where_the_token_is_never_what_it_is(tmp_path) -> None:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    from fake_train_launcher import MemoryTrainLauncher
    models = tmp_path / "models"
    models.mkdir()
    args = cli.parse_args(["--db", str(tmp_path / "state" / "t.db"), "--models", str(models), "--gpus", "1"])
    app, told = cli.build(args, make_launcher=lambda a, instance: MemoryTrainLauncher())
    token = (tmp_path / "state" / "tokens").read_text().strip()
    text = "\n".join(told)
    assert "token: generated into" in text and token not in text and f"exports go to {models}" in text
    assert app.state.train.controller.pool.total == 1 and app.state.train.controller.cpu_slots == 1


def parse(argv):
    from lazyllm_images.cli import cli as root
    captured: list = []
    root.main(args=argv, prog_name="lazyllm", standalone_mode=False, obj={"capture": captured})
    return captured[0]


def test_cli_parses_its_options() -> None:
    r = parse(["run", "training_service", "--models", "/a", "--models", "/b", "--data", "/d", "--token-file", "t",
               "--gpus", "0,1", "--cpu-jobs", "2", "--host", "0.0.0.0", "--name", "train-a", "--base", "offline",
               "--dry-run"])
    assert isinstance(r, TrainServiceRequest) and r.target == "training_service"
    assert (r.models, r.data, r.token_file, r.gpus, r.cpu_jobs) == (("/a", "/b"), ("/d",), "t", "0,1", 2)
    assert (r.launch.host, r.launch.port, r.launch.name, r.launch.dry_run) == ("0.0.0.0", 31341, "train-a", True)
    default = parse(["run", "training_service"])
    assert default.launch.port == 31341 and default.launch.host == "127.0.0.1" and default.cpu_jobs == 1


def test_cli_rejects_bad_values(capsys) -> None:
    from lazyllm_images.cli import main
    assert main(["run", "training_service", "--name", "Bad_Name"]) == 2
    assert main(["run", "training_service", "--cpu-jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 2
