"""Launch needs declared by layers (labels) are applied to the spec."""

from __future__ import annotations

import json

from lazyllm_images.launch import needs
from lazyllm_images.launch.spec import GpuRequest, LaunchSpec


def spec(**kw) -> LaunchSpec:
    return LaunchSpec(name="s-model", image="img", command=("x",), **kw)


def test_labels_are_merged_and_applied():
    labels = {"org.lazyllm.launch.framework-infinity": json.dumps({
        "env": {"INFINITY_HOME": "/home/infinity/.cache", "HF_HUB_OFFLINE": "1"}, "shm_size": "2g",
        "mounts": [{"target": "/home/infinity/.cache", "purpose": "cache", "read_only": False, "kind": "tmpfs"}]}),
        "org.lazyllm.launch.group-video": json.dumps({"gpu_capabilities": ["video"]}),
        "org.lazyllm.other": "x"}
    declared = needs.from_labels(labels)
    out = needs.apply(spec(env={"HF_HUB_OFFLINE": "0"}, shm_size="1g", gpus=GpuRequest("all")), declared)
    assert out.env == {"HF_HUB_OFFLINE": "0", "INFINITY_HOME": "/home/infinity/.cache"}   # the spec wins
    assert out.shm_size == "2g" and "video" in out.gpus.capabilities
    assert [m.target for m in out.mounts] == ["/home/infinity/.cache"]


def test_a_larger_shm_in_the_spec_is_kept_and_cpu_specs_get_no_capabilities():
    out = needs.apply(spec(shm_size="8g"), [{"shm_size": "1g", "gpu_capabilities": ["video"]}])
    assert out.shm_size == "8g" and "video" not in out.gpus.capabilities
