"""The real launcher's description of a service: ``deploy``'s model-server unit, with the model's host path as the
bind source, the assigned devices, the controller's labels, and nothing a client chose beyond the mapped values.
(What the engine does with it is the engine suites' business; here nothing touches an engine.)"""

from __future__ import annotations

import json

import pytest

from lazyllm_images import engine
from lazyllm_images.runtime.controller.launcher import Refused
from lazyllm_images.runtime.controller.records import Record
from lazyllm_images.runtime.infer.engine_launcher import ModelServerLauncher, gpus_arg


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return folder


def record(model, framework: str = "vllm-cpu", gpus: int = 0) -> Record:
    return Record("infer", "owner", "My Svc_1", {"model": "tiny", "model_kind": "dir", "model_inner": str(model),
                                                 "model_host": "/srv/models/tiny", "framework": framework,
                                                 "num_gpus": gpus}, gpus)


def test_gpus_arg() -> None:
    r = Record("infer", "o", "n", {}, 2)
    assert gpus_arg(r, None) == "2" and gpus_arg(r, [1, 3]) == "1,3" and gpus_arg(r, [2]) == "device=2"
    assert gpus_arg(Record("infer", "o", "n", {}, 0), []) == "none"


def test_the_unit_is_deploys_model_server_with_the_host_path_and_labels(model) -> None:
    r = record(model)
    service, m, handle = ModelServerLauncher("inst1").describe(r, 40001, [])
    (unit,) = service.units
    spec = unit.spec
    assert service.name == r.unit_name == f"lazyllm-infer-my-svc-1-{r.uid}" and spec.name == f"{service.name}-model"
    binds = [mt for mt in spec.mounts if mt.kind != "tmpfs"]
    assert [(mt.source, mt.target, mt.read_only) for mt in binds] == [("/srv/models/tiny", "/model", True)]
    assert spec.image == m.plan.top.ref and spec.gpus.kind == "none" and spec.user == "10001:10001"
    assert spec.security_opt == ("no-new-privileges",) and spec.cap_drop == ("ALL",)   # deploy's hardening
    assert spec.labels["org.lazyllm.controller"] == "inst1" and spec.labels["org.lazyllm.record"] == r.uid
    assert json.loads(spec.labels["org.lazyllm.handle"]) == handle
    assert handle == {"service": service.name, "container": spec.name, "port": 40001,
                      "health_url": "http://127.0.0.1:40001/health", "endpoint": "http://127.0.0.1:40001/v1/"}
    assert spec.network == f"{service.name}-net"


def test_on_the_controllers_network_health_goes_by_container_name(model) -> None:
    launcher = ModelServerLauncher("inst1", publish_host="0.0.0.0", endpoint_host="gpu-box.lan",
                                   network="lazyllm-infer-net")
    service, _, handle = launcher.describe(record(model), 40002, [])
    spec = service.units[0].spec
    assert spec.network == "lazyllm-infer-net" and spec.ports[0].host_ip == "0.0.0.0"
    assert handle["health_url"] == f"http://{spec.name}:8000/health"
    assert handle["endpoint"] == "http://gpu-box.lan:40002/v1/"


def test_prepare_refuses_a_missing_stack_and_reports_what_it_chose(model, monkeypatch) -> None:
    launcher = ModelServerLauncher("inst1")
    monkeypatch.setattr(engine, "image_exists", lambda ref: False)
    with pytest.raises(Refused) as err:
        launcher.prepare(record(model))
    assert (err.value.status, err.value.code) == (409, "stack_missing")
    assert "lazyllm run infer_service --frameworks vllm-cpu" in str(err.value)
    monkeypatch.setattr(engine, "image_exists", lambda ref: True)
    facts = launcher.prepare(record(model, framework="auto"))
    assert facts["framework"] == "vllm-cpu" and facts["deploy_method"] == "Vllm" and facts["api_base"] == "/v1"


def test_prepare_refuses_what_deploy_refuses(model, monkeypatch) -> None:
    monkeypatch.setattr(engine, "image_exists", lambda ref: True)
    with pytest.raises(Refused) as err:
        ModelServerLauncher("inst1").prepare(record(model, framework="vllm", gpus=0))
    assert err.value.status == 400 and "cannot run without a GPU" in str(err.value)


def test_the_served_name_upstreams_client_sends_once_deploy_takes_one(model, monkeypatch) -> None:
    from lazyllm_images.services import deploy
    seen = {}
    real = deploy.model_server

    def model_server(request, service, role="model", served_name=None):
        seen["served_name"] = served_name
        return real(request, service, role)
    monkeypatch.setattr(deploy, "model_server", model_server)
    ModelServerLauncher("inst1").describe(record(model), 40003, [])
    assert seen == {"served_name": "lazyllm"}


def test_a_hub_id_never_turns_into_a_folder_of_the_working_directory(tmp_path, monkeypatch) -> None:
    """``resolve_model`` takes a relative name that is a folder in the working directory as that folder: a client
    naming "etc" from a controller whose working directory is / must not get /etc mounted."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(engine, "image_exists", lambda ref: True)
    hub = Record("infer", "o", "n", {"model": "etc", "model_kind": "hub", "model_inner": "", "model_host": "",
                                     "framework": "vllm-cpu", "num_gpus": 0}, 0)
    with pytest.raises(Refused) as err:
        ModelServerLauncher("inst1").prepare(hub)
    assert (err.value.status, err.value.code) == (400, "outside_roots")
    with pytest.raises(Refused):
        ModelServerLauncher("inst1").describe(hub, 40004, [])


def test_packaged_models_are_allowed_with_hub_ids_off(tmp_path) -> None:
    from lazyllm_images.runtime.controller.modelpaths import BadModel, ModelRoots
    from lazyllm_images.runtime.infer.__main__ import packaged_model
    assert packaged_model("all-MiniLM-L6-v2") and packaged_model("minilm") and not packaged_model("Qwen/Qwen2")
    roots = ModelRoots([], allow_hub=False, packaged=packaged_model)
    assert roots.resolve("all-MiniLM-L6-v2").kind == "package"
    with pytest.raises(BadModel, match="hub ids are turned off"):
        roots.resolve("Qwen/Qwen2-0.5B")
