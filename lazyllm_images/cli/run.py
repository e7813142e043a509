"""``lazyllm run chatbot|rag|WORKFLOW.json|training_service|infer_service``"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..requests import CHAT_FRAMEWORKS, ONLINE_SOURCES, RUN_SERVICES, RunRequest
from .common import (DefaultGroup, build_options, close_matches, dispatch, launch_options, make_build_options,
                     make_launch_options, target_option_list, target_options)


def _route(first: str) -> str | None:
    import os
    if first.lower().endswith(".json") or (os.path.isfile(first) and first not in RUN_SERVICES):
        return "workflow"
    if first.startswith("-"):
        return None
    hint = close_matches(first, RUN_SERVICES)
    raise UsageError(f"unknown run target {first!r}",
                     (f"did you mean {hint}? " if hint else "") +
                     "targets: chatbot, rag, WORKFLOW.json, training_service, infer_service")


@click.group("run", cls=DefaultGroup, route=_route,
             missing=UsageError("run needs a target",
                                "one of: chatbot, rag, WORKFLOW.json, training_service, infer_service"))
def run():
    """Launch a service: a chat page, a RAG service, a JSON workflow graph, the training or inference service."""


def model_options(func):
    opts = [
        click.option("--model", metavar="NAME", help="Model: a local directory or a hub id (or an online model "
                     "name with --source)."),
        click.option("--framework", type=click.Choice(CHAT_FRAMEWORKS, case_sensitive=False),
                     help="Serve --model locally with this framework (not with --source)."),
        click.option("--source", type=click.Choice(ONLINE_SOURCES, case_sensitive=False),
                     help="Use this online API instead (not with --framework); its key is read from the "
                          "provider's usual environment variable."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _exclusive(framework, source):
    if framework and source:
        raise UsageError("--framework and --source exclude each other",
                         "--framework serves a model locally, --source uses an online API: give one")


@run.command("chatbot")
@model_options
@launch_options
@build_options
def chatbot(model, framework, source, **kw):
    """A web chat page over a locally served model (--framework) or an online API (--source)."""
    _exclusive(framework, source)
    request = RunRequest(target="chatbot", model=model, framework=framework and framework.lower(),
                         source=source and source.lower(), launch=make_launch_options(kw),
                         build=make_build_options(kw))
    dispatch(request, _execute)


@run.command("rag")
@model_options
@click.option("--documents", metavar="DIR", help="Folder of documents to answer from (required; mounted "
              "read-only).")
@click.option("--embed-model", metavar="NAME", help="Embedding model (default: all-MiniLM-L6-v2, packaged, "
              "no hub access needed).")
@click.option("--rerank-model", metavar="NAME|DIR", help="A reranker (cross-encoder) that reorders the retrieved "
              "passages; served by the project's embedding server. Default: none (fused retrieval order).")
@click.option("--embed-gpus", metavar="GPUS", help="GPUs for the embedding and reranker servers (same forms as "
              "--gpus). Default: none: they run on the CPU and --gpus goes to the LLM alone.")
@launch_options
@build_options
def rag(model, framework, source, documents, embed_model, rerank_model, embed_gpus, **kw):
    """A RAG service over --documents DIR, answering with citations (retrieval-only without a model)."""
    _exclusive(framework, source)
    if not documents:
        raise UsageError("run rag needs --documents DIR", "e.g. 'lazyllm run rag --documents ./docs'")
    request = RunRequest(target="rag", model=model, framework=framework and framework.lower(),
                         source=source and source.lower(), documents=documents, embed_model=embed_model,
                         rerank_model=rerank_model, embed_gpus=embed_gpus,
                         launch=make_launch_options(kw), build=make_build_options(kw))
    dispatch(request, _execute)


@run.command("workflow")
@click.argument("workflow", metavar="WORKFLOW.json")
@click.option("--input", "graph_input", metavar="VALUE", help="Run once with this input (JSON when it parses, else "
              "the string) and print the result as one line of JSON.")
@click.option("--args", "graph_args", metavar="JSON_ARRAY", help="Run once with several inputs ('[]' for none).")
@click.option("--serve", "graph_serve", is_flag=True, help="Run the graph as a service (JSON API, SSE node events) "
              "even without a 'server' resource.")
@click.option("--trace", "graph_trace", is_flag=True, help="Print each node's timing (one-shot runs).")
@launch_options
@build_options
def workflow(workflow, graph_input, graph_args, graph_serve, graph_trace, **kw):
    """Run upstream LazyLLM's JSON graph: validated first (every problem with its JSON path), then from an image.

    \b
    lazyllm run G.json                    upstream's REPL (one run per line; 'quit' ends it)
    lazyllm run G.json --input 3          one run, the result as one line of JSON
    lazyllm run G.json --args '[1, 2]'    one run with several inputs
    lazyllm run G.json --dry-run          validate and show what would start
    """
    request = RunRequest(target="workflow", workflow=workflow, graph_input=graph_input, graph_args=graph_args,
                         graph_serve=graph_serve, graph_trace=graph_trace, launch=make_launch_options(kw),
                         build=make_build_options(kw))
    dispatch(request, _execute)


# ---------------------------------------------------------------- run training_service (services/train.py)

def controller_options(func):
    """What run training_service and run infer_service share: the controller's name, dry run, foreground, keep,
    timeout, and the build options."""
    opts = [
        click.option("--name", metavar="NAME", help="Name of the service (default: lazyllm-train or lazyllm-infer); "
                     "its records live in the volume NAME-state."),
        click.option("--dry-run", is_flag=True, help="Print the plan and the exact engine calls; change nothing."),
        *target_option_list(),
        click.option("--foreground", is_flag=True, help="Stream the controller's logs; Ctrl-C stops and removes it."),
        click.option("--keep", is_flag=True, help="Keep the controller's container if it fails to start."),
        click.option("--timeout", type=float, default=600.0, show_default=True,
                     help="Seconds to wait for the controller to become healthy."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return build_options(func)


@run.command("training_service")
@click.option("--port", type=click.IntRange(1, 65535), default=31341, show_default=True,
              help="Host port of the API (upstream's LazyCraft deployment uses 31341).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Host address the API binds to (0.0.0.0: every address).")
@click.option("--models", "models", metavar="DIR", multiple=True, help="A folder of model folders: base models are "
              "named under it (read-only in the jobs); exports are written into the first one (repeatable).")
@click.option("--data", "data", metavar="DIR", multiple=True, help="A folder of datasets clients may name by path "
              "(mounted read-only; repeatable). URLs and uploads (POST /v1/files) need none.")
@click.option("--token-file", metavar="FILE", help="API tokens, one a line, each seeing only its own jobs "
              "(default: one token generated at the first start and kept in a 0600 file, printed where).")
@click.option("--gpus", metavar="SPEC", help="The GPUs the controller hands out to jobs: none | N | 0,2 (default: "
              "every NVIDIA GPU of this host; none without: jobs train on the CPU).")
@click.option("--cpu-jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs without a GPU that run at once; the others wait Pending.")
@controller_options
def training_service(port, host, models, data, token_file, gpus, cpu_jobs, name, dry_run, foreground, keep,
                     timeout, **kw):
    """The fine-tuning API (upstream's /v1/finetuneTasks): LoRA jobs on request, each a container.

    \b
    lazyllm run training_service --models ~/models --data ~/datasets    API on 127.0.0.1:31341
    lazyllm run training_service --models /srv/m --host 0.0.0.0 --token-file tokens.txt --gpus 0,1
    lazyllm run training_service --models ~/models --dry-run

    Each job runs TRL/PEFT in a container of the finetune stack (built at start), on the GPUs it asked for or on
    the CPU; pause saves a checkpoint, resume goes on from it, export merges the adapter into a model folder under
    the first --models DIR that 'lazyllm deploy' and infer_service serve. Records survive restarts.
    """
    from ..requests import LaunchOptions, TrainServiceRequest
    from .common import check_host, check_name
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout:g} is not a positive number of seconds", "e.g. --timeout 600")
    launch = LaunchOptions(host=check_host(host), port=port, name=check_name(name), dry_run=dry_run,
                           foreground=foreground, keep=keep, timeout=timeout, **target_options(kw, foreground))
    request = TrainServiceRequest(models=tuple(models), data=tuple(data), token_file=token_file, gpus=gpus,
                                  cpu_jobs=cpu_jobs, launch=launch, build=make_build_options(kw))
    dispatch(request, _execute_train)


def _execute_train(request):
    from ..services.train import run as run_train
    run_train(request)


# ---------------------------------------------------------------- run infer_service (services/infer.py)

@run.command("infer_service")
@click.option("--port", type=click.IntRange(1, 65535), default=31340, show_default=True,
              help="Host port of the API (upstream's LazyCraft deployment uses 31340).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Host address the API and the model servers' ports bind to (0.0.0.0: every address).")
@click.option("--endpoint-host", metavar="NAME", help="Host name in the endpoints clients get (default: --host; "
              "127.0.0.1 when --host is 0.0.0.0: give this host's name for remote clients).")
@click.option("--models", "models", metavar="DIR", multiple=True, help="A folder of model folders clients may name "
              "(mounted read-only; repeatable). Packaged models and hub ids need none.")
@click.option("--no-hub", is_flag=True, help="Refuse hub ids: only folders under --models and packaged models.")
@click.option("--token-file", metavar="FILE", help="API tokens, one a line, each seeing only its own services "
              "(default: one token generated at the first start and kept in a 0600 file, printed where).")
@click.option("--gpus", metavar="SPEC", help="The GPUs the controller hands out: none | N | 0,2 (default: every "
              "NVIDIA GPU of this host; none without).")
@click.option("--frameworks", "frameworks", metavar="LIST", multiple=True, help="Frameworks clients may ask for, "
              "comma-separated (default: those that run here: auto, embedding, infinity, vllm-cpu without a GPU; "
              "auto, vllm, vllm-cpu, lightllm, lmdeploy, infinity, embedding with an NVIDIA GPU). Stacks built at "
              "start: each framework named here, plus what 'auto' picks on this host for an LLM and an embedding "
              "model (vllm-cpu and embedding without a GPU, vllm and embedding with one); without --frameworks only "
              "auto's picks. A framework whose stack is not built answers 409.")
@controller_options
def infer_service(port, host, endpoint_host, models, no_hub, token_file, gpus, frameworks, name, dry_run,
                  foreground, keep, timeout, **kw):
    """The inference-service API (upstream's /v1/inference_services): clients deploy models on request.

    \b
    lazyllm run infer_service --models ~/models              API on 127.0.0.1:31340; prints where the token is
    lazyllm run infer_service --models /srv/m --host 0.0.0.0 --endpoint-host gpu1.lan --token-file tokens.txt
    lazyllm run infer_service --frameworks vllm-cpu,embedding,infinity --dry-run

    Each inference service is the model server 'lazyllm deploy' launches; records survive restarts (volume
    NAME-state). The controller runs in a container holding the engine's socket: clients only ever name a model,
    a framework from the list and a GPU count.
    """
    from ..requests import InferServiceRequest, LaunchOptions
    from .common import check_host, check_name
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout:g} is not a positive number of seconds", "e.g. --timeout 600")
    launch = LaunchOptions(host=check_host(host), port=port, name=check_name(name), dry_run=dry_run,
                           foreground=foreground, keep=keep, timeout=timeout, **target_options(kw, foreground))
    request = InferServiceRequest(models=tuple(models), token_file=token_file, gpus=gpus,
                                  frameworks=tuple(frameworks), endpoint_host=endpoint_host, allow_hub=not no_hub,
                                  launch=launch, build=make_build_options(kw))
    dispatch(request, _execute_infer)


def _execute_infer(request):
    from ..services.infer import run as run_infer
    run_infer(request)


def _execute(request: RunRequest):
    from ..services.run import run
    run(request)
