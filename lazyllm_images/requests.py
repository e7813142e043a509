"""What the user asked for, parsed from argv: plain frozen dataclasses (cheap to import).

The CLI builds one of these per command; planning and launching take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FRAMEWORKS = ("auto", "vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding", "mindie")
CHAT_FRAMEWORKS = ("vllm", "vllm-cpu", "lightllm", "lmdeploy")
ONLINE_SOURCES = ("openai", "sensenova", "glm", "kimi", "qwen", "doubao")
RUN_SERVICES = ("chatbot", "rag", "training_service", "infer_service")


@dataclass(frozen=True)
class BuildOptions:
    """Options shared by every command that may build images."""

    base: str | None = None          # recipe name of the base; None: LAZYLLM_BASE or the default
    cuda: str | None = None
    python: str | None = None
    torch: str | None = None
    registry: str | None = None
    push: bool = False
    offline: bool = False
    locked: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class InstallRequest:
    items: tuple[str, ...]
    build: BuildOptions = field(default_factory=BuildOptions)
    dry_run: bool = False
    json: bool = False
    dockerfiles: str | None = None


@dataclass(frozen=True)
class LaunchOptions:
    """Options shared by every command that launches containers."""

    host: str = "127.0.0.1"
    port: int | None = None
    gpus: str | None = None          # all | N | 0,1 | GPU-uuid,... | none
    name: str | None = None
    dry_run: bool = False
    compose: str | None = None       # --compose FILE: the short form of --target compose -o FILE
    foreground: bool = False
    keep: bool = False
    timeout: float = 600.0
    auth_token: str | None = None    # the token the service's web routes ask for (chat page, RAG service)
    target: str = "docker"           # docker (launch here) | compose | swarm | k8s (render files)
    output: str | None = None        # -o: the stack file (compose, swarm) or the manifests' folder (k8s)
    namespace: str | None = None     # k8s
    runtime_class: str | None = None  # k8s: runtimeClassName of GPU pods
    node_labels: tuple[tuple[str, str], ...] = ()   # swarm constraints / k8s nodeSelector: where the units may run

    def __post_init__(self):
        if self.compose and self.target == "docker":
            object.__setattr__(self, "target", "compose")
            object.__setattr__(self, "output", self.output or self.compose)

    @property
    def engine_free(self) -> bool:
        """True when planning must not ask this host's engine (a dry run; files for a cluster, whose nodes are
        not this host)."""
        return self.dry_run or self.target in ("swarm", "k8s")

    @property
    def renders(self) -> bool:
        """True when the service is written to files for another tool (compose, Swarm, Kubernetes), not run."""
        return self.target != "docker"


@dataclass(frozen=True)
class DeployModelRequest:
    model: str
    framework: str = "auto"
    chat: bool = False
    options: tuple[tuple[str, str], ...] = ()   # --key=value, in order given
    flags: tuple[str, ...] = ()                 # --flag without a value
    pass_unknown: bool = False
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    build: BuildOptions = field(default_factory=BuildOptions)


@dataclass(frozen=True)
class McpServerRequest:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    pass_environment: bool = False
    sse_port: int = 0
    sse_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()  # extra Host headers: HOST, HOST:PORT or '*'
    allow_origins: tuple[str, ...] = ()
    auth_token: str | None = None
    isolate: bool = False
    restart: str = "no"              # no | on-failure
    container: bool = True
    url_file: str | None = None
    foreground: bool = False
    dry_run: bool = False
    name: str | None = None
    placement: dict = field(default_factory=dict)   # --target, -o, --namespace, --runtime-class (LaunchOptions)
    build: BuildOptions = field(default_factory=BuildOptions)


@dataclass(frozen=True)
class RunRequest:
    target: str                      # chatbot | rag | workflow | training_service | infer_service
    model: str | None = None
    framework: str | None = None
    source: str | None = None
    documents: str | None = None
    workflow: str | None = None      # path of the JSON graph for target == "workflow"
    embed_model: str | None = None
    rerank_model: str | None = None  # a cross-encoder that reorders retrieved passages (run rag)
    embed_gpus: str | None = None    # the embedding/reranker servers' GPUs (None: the CPU)
    graph_input: str | None = None   # run WORKFLOW.json --input VALUE
    graph_args: str | None = None    # run WORKFLOW.json --args JSON_ARRAY
    graph_serve: bool = False        # run WORKFLOW.json --serve
    graph_trace: bool = False        # run WORKFLOW.json --trace
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    build: BuildOptions = field(default_factory=BuildOptions)


@dataclass(frozen=True)
class InferServiceRequest:
    """``lazyllm run infer_service``: the inference-service controller (upstream's ``/v1/inference_services``)."""

    models: tuple[str, ...] = ()                # model roots clients may name folders under (mounted read-only)
    token_file: str | None = None               # API tokens, one a line (default: one generated and kept)
    gpus: str | None = None                     # the GPUs the controller hands out: none | N | i,j (default: all)
    frameworks: tuple[str, ...] = ()            # the frameworks clients may ask for (default: this host's)
    endpoint_host: str | None = None            # the host name in the endpoints clients get (default: --host)
    allow_hub: bool = True                      # hub ids allowed (besides folders under the roots)
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    build: BuildOptions = field(default_factory=BuildOptions)
    target: str = "infer_service"


@dataclass(frozen=True)
class TrainServiceRequest:
    """``lazyllm run training_service``: the fine-tuning controller (upstream's ``/v1/finetuneTasks``)."""

    models: tuple[str, ...] = ()                # base models are folders under these; exports go to the first
    data: tuple[str, ...] = ()                  # datasets named by path are files under these (read-only)
    token_file: str | None = None               # API tokens, one a line (default: one generated and kept)
    gpus: str | None = None                     # the GPUs the controller hands out: none | N | i,j (default: all)
    cpu_jobs: int = 1                           # jobs without a GPU that run at once
    launch: LaunchOptions = field(default_factory=LaunchOptions)
    build: BuildOptions = field(default_factory=BuildOptions)
    target: str = "training_service"
