"""LightLLM (``python -m lightllm.server.api_server``): ``/v1/chat/completions``, ``/generate``, ``/health``.

Its flags are written with underscores. Upstream LazyLLM forced ``--eos_id=2``, ``--data_type=float16`` and
``--max_req_input_len`` (gone from LightLLM's parser); this adapter leaves them to LightLLM, which reads them
from the model. LightLLM takes its sampling defaults from the model's ``generation_config.json`` and has no flag
to set them, so generation defaults are sent by the chat page with each request.
"""

from __future__ import annotations

from ..launch.spec import GpuRequest
from .base import Framework, Needs, option_table, python_module

# lightllm/server/api_cli.py (2025)
OPTIONS = option_table("""
--run_mode --httpserver_workers --zmq_mode --tokenizer_mode --load_way --max_total_token_num --mem_fraction
--batch_max_tokens --eos_id* --tool_call_parser --running_max_req_size --nnodes --node_rank
--multinode_httpmanager_port --multinode_router_gloo_port --tp --dp --max_req_total_len --nccl_host --nccl_port
--use_config_server_to_init_nccl! --mode* --trust_remote_code! --disable_log_stats! --log_stats_interval
--router_token_ratio --router_max_new_token_len --router_max_wait_tokens --disable_aggressive_schedule!
--dp_prefill_wait_step --disable_dynamic_prompt_cache! --chunked_prefill_size --disable_chunked_prefill!
--diverse_mode! --token_healing_mode! --output_constraint_mode --first_token_constraint_mode!
--enable_multimodal! --enable_multimodal_audio! --enable_mps! --disable_custom_allreduce!
--enable_custom_allgather! --enable_tpsp_mix_mode! --enable_prefill_microbatch_overlap!
--enable_decode_microbatch_overlap! --enable_flashinfer_prefill! --enable_flashinfer_decode! --enable_fa3!
--cache_capacity --cache_reserved_ratio --data_type --return_all_prompt_logprobs! --use_reward_model!
--long_truncation_mode --use_tgi_api! --health_monitor! --metric_gateway --job_name --grouping_key*
--push_interval --visual_infer_batch_size --visual_gpu_ids* --visual_tp --visual_dp --visual_nccl_ports*
--enable_monitor_auth! --disable_cudagraph! --graph_max_batch_size --graph_split_batch_size
--graph_grow_step_size --graph_max_len_in_batch --quant_type --quant_cfg --vit_quant_type --vit_quant_cfg
--sampling_backend --mtp_mode --mtp_draft_model_dir --mtp_step --kv_quant_calibration_config_path
""")
RESERVED = {
    "model_dir": "the model is the positional MODEL of 'lazyllm deploy'",
    "model_name": "the served name is the model's name; lazyllm prints it with the URL",
    "host": "use lazyllm's --host (the address the port is published on)",
    "port": "use lazyllm's --port (the host port; the container port is fixed)",
}


class Lightllm(Framework):
    name = "lightllm"
    health_path = "/health"
    needs = Needs(gpu="required", vendors=("nvidia",), shm_size="8g", min_compute_capability="7.0")
    OPTIONS = OPTIONS
    RESERVED = RESERVED
    generation_mode = "request"

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return python_module("lightllm.server.api_server", "--model_dir", model_path, "--model_name",
                             served_name, "--host", "0.0.0.0", "--port", str(port))

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {"trust_remote_code": True}
        if gpu_count and gpu_count > 1:
            out["tp"] = str(gpu_count)
        return out
