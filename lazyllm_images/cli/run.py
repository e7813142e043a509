"""``lazyllm run chatbot|rag|WORKFLOW.json|training_service|infer_service``"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..requests import CHAT_FRAMEWORKS, ONLINE_SOURCES, RUN_SERVICES, RunRequest
from .common import (DefaultGroup, build_options, close_matches, dispatch, launch_options, make_build_options,
                     make_launch_options)


def _route(first: str) -> str | None:
    if first.lower().endswith(".json"):
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
@launch_options
@build_options
def workflow(workflow, **kw):
    """Run a JSON workflow graph (nodes, edges, resources)."""
    request = RunRequest(target="workflow", workflow=workflow, launch=make_launch_options(kw),
                         build=make_build_options(kw))
    dispatch(request, _execute)


def _service(name: str, doc: str):
    @run.command(name, help=doc)
    @launch_options
    @build_options
    def command(**kw):
        request = RunRequest(target=name, launch=make_launch_options(kw), build=make_build_options(kw))
        dispatch(request, _execute)
    return command


training_service = _service("training_service", "The fine-tuning job service (HTTP API).")
infer_service = _service("infer_service", "The inference deployment service (HTTP API).")


def _execute(request: RunRequest):
    from ..services.run import run
    run(request)
