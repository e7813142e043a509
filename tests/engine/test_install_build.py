"""`lazyllm install` for real: BuildKit builds on the offline base, reuse by content tag, faults, locks."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from recipe_helpers import unique_mark, write_groups


def outcome(result) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def hows(data: dict) -> dict[str, str]:
    return {layer["name"]: layer["how"] for layer in data["layers"]}


def run_in(docker_client, image: str, *argv: str) -> str:
    return docker_client.containers.run(image, list(argv), remove=True, network_mode="none",
                                        labels={"org.lazyllm.test-run": os.environ["LAZYLLM_TEST_RUN"]}).decode()


def test_a_three_group_stack_builds_then_a_second_install_builds_nothing(lazyllm, docker_client):
    first = outcome(lazyllm("install", "tiny-a", "tiny-b", "tiny-c", "--json"))
    assert [x["name"] for x in first["layers"]] == ["python", "group-tiny-a", "group-tiny-b", "group-tiny-c", "runtime"]
    assert set(hows(first).values()) <= {"built", "cached"}
    out = run_in(docker_client, first["stack"], "python", "-c", "import six, idna, packaging; print('ok')")
    assert out.strip() == "ok"
    started = time.monotonic()
    second = outcome(lazyllm("install", "tiny-a", "tiny-b", "tiny-c", "--json"))
    assert set(hows(second).values()) == {"cached"} and second["image"] == first["image"]
    assert time.monotonic() - started < 10
    img = docker_client.images.get(first["image"])
    assert img.labels["org.lazyllm.verified.runtime"].startswith("smoke-passed")
    assert "six==1.16.0" in img.labels["org.lazyllm.lock.group-tiny-a"]
    lock = json.loads((lazyllm.workdir / "lazyllm.lock").read_text())
    assert lock["image"] == first["image"] and any("idna==3.10" in p for layer in lock["layers"]
                                                   for p in layer["packages"])


def test_item_order_gives_the_same_image_id(lazyllm, docker_client):
    a = outcome(lazyllm("install", "tiny-a", "tiny-b", "--json"))
    b = outcome(lazyllm("install", "tiny-b", "tiny-a", "--json"))
    assert a["stack"] == b["stack"]
    assert docker_client.images.get(a["image"]).id == docker_client.images.get(b["image"]).id
    assert set(hows(b).values()) == {"cached"}


def test_changing_the_top_group_rebuilds_only_it(lazyllm, test_recipes, tmp_path, docker_client):
    import shutil
    copy = tmp_path / "recipes-changed"
    shutil.copytree(test_recipes, copy)
    before = outcome(lazyllm("install", "tiny-a", "tiny-c", "--json"))
    # a change no earlier run made (the engine may keep images between runs): same group name, new content
    write_groups(copy, {"tiny-c": {"order": 60, "packages": ["packaging==24.1", "six==1.16.0"],
                                   "commands": [f"true {unique_mark()}"], "smoke": {"imports": ["packaging"]}}})
    after = outcome(lazyllm("install", "tiny-a", "tiny-c", "--json", env={"LAZYLLM_RECIPES": str(copy)}))
    try:
        assert hows(after) == {"python": "cached", "group-tiny-a": "cached", "group-tiny-c": "built",
                               "runtime": "built"}
        same = [x["image"] for x in before["layers"][:2]]
        assert [x["image"] for x in after["layers"][:2]] == same
    finally:
        for layer in reversed(after["layers"][2:]):           # this run's content: remove it, top first
            docker_client.images.remove(layer["image"], force=True)


def test_cpu_torch_comes_from_the_host_wheelhouse(lazyllm, docker_client):
    data = outcome(lazyllm("install", "tiny-torch", "--json"))
    out = run_in(docker_client, data["stack"], "python", "-c", "import torch; print(torch.__version__)")
    assert out.strip() == "2.13.0+cpu"
    torch_layer = next(x for x in data["layers"] if x["name"] == "torch")
    labels = docker_client.images.get(torch_layer["image"]).labels
    assert labels["org.lazyllm.torch"] == "2.13.0+cpu" and "torch==2.13.0+cpu" in labels["org.lazyllm.constraints"]


INSTALLERS = ("import importlib.metadata as m, sys, six, pathlib; d = m.distribution('six');"
              "pyc = list(pathlib.Path(sys.prefix).glob('lib/python*/site-packages/__pycache__/six.*.pyc'));"
              "print(d.read_text('INSTALLER').strip(), bool(pyc))")


def test_uv_installs_the_layers_with_bytecode_and_a_recipe_can_choose_pip(lazyllm, test_recipes, docker_client):
    mark = unique_mark()
    write_groups(test_recipes, {f"tiny-uv-{mark}": {"order": 75, "packages": ["six==1.16.0"]},
                                f"tiny-pip-{mark}": {"order": 75, "packages": ["six==1.16.0"], "installer": "pip"}})
    built = lazyllm("install", f"tiny-pip-{mark}")                  # the build says which layers pip installed
    assert built.returncode == 0, built.stderr[-3000:]
    assert f"note: pip installs group-tiny-pip-{mark} (the recipe's choice)" in " ".join(built.stdout.split())
    for name, expected in ((f"tiny-uv-{mark}", "uv True"), (f"tiny-pip-{mark}", "pip True")):
        data = outcome(lazyllm("install", name, "--json"))
        assert next(x for x in data["layers"] if x["name"] == f"group-{name}")["installer"] == expected.split()[0]
        assert run_in(docker_client, data["stack"], "python", "-c", INSTALLERS).strip() == expected
    # the project's own code is compiled at build time (the servers' user cannot write __pycache__ there)
    out = run_in(docker_client, data["stack"], "python", "-c",
                 "import pathlib; print(len(list(pathlib.Path('/opt/lazyllm/app').rglob('*.pyc'))) > 10)")
    assert out.strip() == "True"
    plan = lazyllm("install", f"tiny-pip-{mark}", "--dry-run")
    assert f"pip installs group-tiny-pip-{mark} (the recipe's choice)" in " ".join(plan.stdout.split())


def test_a_failing_layer_names_the_step_shows_the_log_and_keeps_the_layers_below(lazyllm, docker_client):
    result = lazyllm("install", "tiny-a", "tiny-bad")
    assert result.returncode == 1
    err = result.stderr
    assert "layer group-tiny-bad failed at:" in err and "RUN" in err
    assert "  | " in err and "full log: " in err
    log = err.split("full log: ")[1].split()[0].rstrip(";")
    assert os.path.isfile(log) and "lazyllm-no-such-package-xyz" in open(log).read()
    assert err.strip().splitlines()[-1].startswith("hint: ") and "Traceback" not in err
    plan = lazyllm.plan("tiny-a", "tiny-bad")
    kept = next(x for x in plan["layers"] if x["name"] == "group-tiny-a")
    assert docker_client.images.get(kept["image"])


def test_a_layer_that_changes_a_protected_package_fails_naming_both(lazyllm, docker_client):
    result = lazyllm("install", "tiny-breaks-torch")
    assert result.returncode == 1
    assert "layer group-tiny-breaks-torch changed protected package torch" in result.stderr
    plan = lazyllm.plan("tiny-breaks-torch")
    broken = next(x for x in plan["layers"] if x["name"] == "group-tiny-breaks-torch")
    import docker.errors
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(broken["image"])


def test_interrupting_a_build_keeps_lower_layers_and_a_rerun_resumes(lazyllm, test_recipes, tmp_path):
    marker = unique_mark()
    write_groups(test_recipes, {f"tiny-slow-{marker}": {"order": 70, "commands": [f"sleep 12 # {marker}"]}})
    group = f"tiny-slow-{marker}"
    proc = lazyllm.popen("install", "tiny-a", group)
    deadline, seen = time.monotonic() + 600, ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if f"[group-{group}] building" in line:
            break
        assert line or proc.poll() is None, seen
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)                       # what Ctrl-C does to the foreground group
    proc.wait(timeout=60)
    assert proc.returncode != 0
    plan = lazyllm.plan("tiny-a", group)
    states = {x["name"]: x["exists"] for x in plan["layers"]}
    assert states["python"] and states["group-tiny-a"] and not states[f"group-{group}"]
    again = outcome(lazyllm("install", "tiny-a", group, "--json"))
    assert hows(again)["group-tiny-a"] == "cached" and hows(again)[f"group-{group}"] == "built"


def test_two_installs_at_once_do_not_race(lazyllm, test_recipes):
    marker = unique_mark()
    group = f"tiny-shared-{marker}"
    write_groups(test_recipes, {group: {"order": 65, "commands": [f"sleep 4 # {marker}"]}})
    first = lazyllm.popen("install", "tiny-a", group, "--json")
    second = lazyllm.popen("install", "tiny-a", group, "--json")
    outs = []
    for proc in (first, second):
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout))
    assert outs[0]["image"] == outs[1]["image"]
    built = [hows(o)[f"group-{group}"] for o in outs]
    assert sorted(built) == ["built", "cached"]              # one built it, the other waited and reused it


def test_locked_rebuilds_the_recorded_versions(lazyllm):
    outcome(lazyllm("install", "tiny-a", "tiny-c", "--json"))
    plan = lazyllm.plan("tiny-a", "tiny-c", extra=("--locked",))
    layer = next(x for x in plan["layers"] if x["name"] == "group-tiny-c")
    assert "packaging==24.1" in layer["constraints"] and "six==1.16.0" in layer["constraints"]
    locked = outcome(lazyllm("install", "tiny-a", "tiny-c", "--locked", "--json"))
    assert locked["image"] == plan["image"]
    result = lazyllm("install", "tiny-b", "--locked", "--dry-run")
    assert result.returncode == 2 and "was written for" in result.stderr


def test_images_report_shared_bytes_and_prune_keeps_stacks(lazyllm):
    outcome(lazyllm("install", "tiny-a", "tiny-b", "--json"))
    outcome(lazyllm("install", "tiny-a", "tiny-c", "--json"))
    report = json.loads(lazyllm("images", "--json").stdout)
    assert report["totals"]["shared_bytes"] > 0
    stacks = {s["tag"] for s in report["stacks"]}
    assert {"lazyllm/stack:tiny-a-tiny-b-offline", "lazyllm/stack:tiny-a-tiny-c-offline"} <= stacks
    dry = lazyllm("prune", "--dry-run")
    assert dry.returncode == 0
    assert "stack:tiny-a-tiny-b-offline" not in dry.stdout


def test_prune_removes_only_layers_no_stack_uses(lazyllm, docker_client):
    kept = outcome(lazyllm("install", "tiny-a", "--json"))
    orphan = outcome(lazyllm("install", "tiny-b", "--json"))
    docker_client.images.remove(orphan["stack"])                 # untag: its top layers are now unreferenced
    result = lazyllm("prune")
    assert result.returncode == 0, result.stderr
    import docker.errors
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(orphan["image"])
    for layer in kept["layers"]:                                 # a tagged stack keeps every layer
        assert docker_client.images.get(layer["image"])
    assert docker_client.images.get("lazyllm/base-offline:debian-bookworm")
