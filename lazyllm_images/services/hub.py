"""Models named by hub id: the hub settings a model container gets, its cache volume, a check of the repo before
anything is built, and a clear reading of a download that failed inside the container.

The container downloads the weights itself (sentence-transformers, vLLM, ... through ``huggingface_hub``) into a
named volume mounted at ``CACHE_TARGET``; the image creates that folder owned by the servers' user, so the engine
copies the ownership into a new volume. Public settings reach it as environment variables, tokens only on stdin.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace

from ..errors import LaunchError, UsageError
from ..launch.spec import LaunchSpec, MountSpec

CACHE_ROOT = "/cache"                       # created by the runtime layer, owned by 10001 (dockerfiles/runtime.j2)
CACHE_TARGET = f"{CACHE_ROOT}/huggingface"
MODELSCOPE_TARGET = f"{CACHE_ROOT}/modelscope"
DEFAULT_VOLUME = "lazyllm-hub-cache"
DEFAULT_ENDPOINT = "https://huggingface.co"

# public settings passed through as they are (huggingface_hub's and ModelScope's own names)
PASSED = ("HF_ENDPOINT", "HF_HUB_ENABLE_HF_TRANSFER", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT",
          "HF_HUB_DISABLE_XET", "MODELSCOPE_DOMAIN", "LAZYLLM_MODEL_SOURCE")
TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN", "LAZYLLM_MODEL_SOURCE_TOKEN")
SOURCES = ("huggingface", "modelscope")
# frameworks that can download from ModelScope, and the switch that makes them
MODELSCOPE_SWITCH = {"vllm": {"VLLM_USE_MODELSCOPE": "True"}, "vllm-cpu": {"VLLM_USE_MODELSCOPE": "True"},
                     "lmdeploy": {"LMDEPLOY_USE_MODELSCOPE": "True"}}
TRUE = ("1", "true", "yes", "on")

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO = re.compile(rf"^(?:{_PART}/)?{_PART}$")


def volume_name() -> str:
    """The cache volume (``LAZYLLM_HUB_CACHE_VOLUME`` names another, e.g. one per test run)."""
    return os.environ.get("LAZYLLM_HUB_CACHE_VOLUME") or DEFAULT_VOLUME


def check_repo_id(repo: str) -> str:
    """A hub id as the hubs accept it: ``name`` or ``org/name``, letters, digits, ``-_.``, no ``--``/``..``."""
    if not _REPO.match(repo) or "--" in repo or ".." in repo:
        raise UsageError(f"model {repo!r} is not a folder here, a packaged model, or a valid hub id",
                         "a hub id is ORG/NAME (letters, digits, '-', '_', '.'), e.g. "
                         "sentence-transformers/all-MiniLM-L6-v2; a folder must exist")
    return repo


@dataclass(frozen=True)
class HubSettings:
    source: str = "huggingface"             # huggingface | modelscope
    endpoint: str = DEFAULT_ENDPOINT
    env: tuple[tuple[str, str], ...] = ()   # passed to the container as they are
    offline: bool = False

    @property
    def endpoint_is_loopback(self) -> bool:
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")


def settings(env: dict[str, str] | None = None) -> HubSettings:
    """The hub settings of this environment, checked: a bad one is a usage error before anything starts."""
    env = dict(os.environ if env is None else env)
    endpoint = (env.get("HF_ENDPOINT") or "").strip()
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in endpoint:
            raise UsageError(f"HF_ENDPOINT={endpoint!r} is not a URL",
                             "set it to the hub or mirror's address, e.g. HF_ENDPOINT=https://hf-mirror.com, "
                             "or unset it for huggingface.co")
        env["HF_ENDPOINT"] = endpoint.rstrip("/")
    source = (env.get("LAZYLLM_MODEL_SOURCE") or "huggingface").strip().lower()
    if source not in SOURCES:
        raise UsageError(f"LAZYLLM_MODEL_SOURCE={env.get('LAZYLLM_MODEL_SOURCE')!r} is not a model source",
                         f"use one of: {', '.join(SOURCES)}")
    offline = (env.get("HF_HUB_OFFLINE") or "").strip().lower() in TRUE
    passed = tuple((k, env[k]) for k in PASSED if env.get(k))
    return HubSettings(source, env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT, passed, offline)


def secrets(s: HubSettings, env: dict[str, str] | None = None) -> dict[str, str]:
    """The tokens, for the container's stdin. Upstream's ``LAZYLLM_MODEL_SOURCE_TOKEN`` is the token of the
    chosen source when that source's own variable is not set."""
    env = os.environ if env is None else env
    out = {k: env[k] for k in TOKENS if env.get(k)}
    generic = out.get("LAZYLLM_MODEL_SOURCE_TOKEN")
    if generic:
        out.setdefault("MODELSCOPE_API_TOKEN" if s.source == "modelscope" else "HF_TOKEN", generic)
    return out


def token(s: HubSettings, env: dict[str, str] | None = None) -> str | None:
    found = secrets(s, env)
    return found.get("HF_TOKEN") or found.get("HUGGING_FACE_HUB_TOKEN")


def with_hub(spec: LaunchSpec, s: HubSettings, framework: str) -> LaunchSpec:
    """A model container that downloads by hub id: the settings and the cache volume (the caller adds the host's
    CA bundle and proxies: ``trust.with_host_trust``)."""
    env = {**spec.env, **dict(s.env), "HF_HOME": CACHE_TARGET, "MODELSCOPE_CACHE": MODELSCOPE_TARGET,
           "HF_HUB_OFFLINE": "1" if s.offline else "0"}
    if s.source == "modelscope":
        if framework not in MODELSCOPE_SWITCH:
            raise UsageError(f"{framework} downloads from Hugging Face only, and LAZYLLM_MODEL_SOURCE=modelscope",
                             f"use --framework {' or '.join(sorted(MODELSCOPE_SWITCH))}, set "
                             "LAZYLLM_MODEL_SOURCE=huggingface, or download the model and give its folder")
        env.update(MODELSCOPE_SWITCH[framework])
    mounts = spec.mounts + (MountSpec("volume", CACHE_ROOT, volume_name(), purpose="hub-cache"),)
    return replace(spec, env=env, mounts=mounts)


# ------------------------------------------------------------------ failures, said plainly

def _refusal(repo: str, status: int, reason: str, has_token: bool, endpoint: str) -> LaunchError:
    where = f"the hub at {endpoint}"
    if status in (401, 403) and has_token:
        return LaunchError(f"{where} refused the token for {repo} ({status}: {reason})",
                           "check HF_TOKEN: it must be valid and allowed to read this repo (gated repos: accept "
                           "their terms on the hub first)")
    if status in (401, 403):
        return LaunchError(f"{where} needs a token for {repo} ({status}: {reason}): it is gated or private, or "
                           "does not exist", "set HF_TOKEN to a token that can read it, and check the id")
    if status == 404:
        return LaunchError(f"{where} has no repo {repo} (404)",
                           "check the id (ORG/NAME, as on the hub) and HF_ENDPOINT" +
                           ("" if has_token else "; a private repo needs HF_TOKEN"))
    return LaunchError(f"{where} answered {status} for {repo}: {reason}", "check HF_ENDPOINT and the hub's status")


def preflight(repo: str, s: HubSettings, env: dict[str, str] | None = None, timeout: float = 5.0) -> str:
    """Ask the hub about ``repo`` before anything is built: a refusal (401/403/404, a gated repo without a token)
    is a LaunchError now rather than a crashed server later. Returns "ok", or "unreachable" when this host
    cannot ask (the container may still reach the hub, or start from its cache), or "skipped"."""
    if s.source != "huggingface" or s.offline:
        return "skipped"
    tok = token(s, env)
    request = urllib.request.Request(f"{s.endpoint}/api/models/{repo}",
                                     headers={"Authorization": f"Bearer {tok}"} if tok else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            info = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _refusal(repo, exc.code, _reason(exc), bool(tok), s.endpoint) from None
    except (OSError, ValueError):
        return "unreachable"
    if isinstance(info, dict) and info.get("gated") not in (None, False) and not tok:
        raise LaunchError(f"{repo} on {s.endpoint} is gated: downloading it needs a token",
                          "accept its terms on the hub, then set HF_TOKEN to a token of that account")
    return "ok"


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        body = {}
    text = (body.get("error") if isinstance(body, dict) else None) or exc.headers.get("X-Error-Message") or exc.reason
    return str(text).strip()[:200]


_SIGNS = (
    (re.compile(r"GatedRepoError|X-Error-Code: GatedRepo|is gated|Access to model .* is restricted", re.I), 401),
    (re.compile(r"RepositoryNotFoundError|Repository Not Found|RepoNotFound", re.I), 404),
    (re.compile(r"401 Client Error|403 Client Error|Invalid (credentials|user token)|Unauthorized", re.I), 401),
    (re.compile(r"LocalEntryNotFoundError|cannot find the requested files|Max retries exceeded|"
                r"Failed to (establish a new connection|resolve)|Connect(ion)?Error|Connection refused|Name or service not known|"
                r"ConnectTimeout|OfflineModeIsEnabled", re.I), 0),
)


def diagnose(logs: str, repo: str, s: HubSettings, has_token: bool) -> LaunchError | None:
    """A download failure read from a model container's last log lines, as one clear error; None when the logs
    do not show one."""
    for sign, status in _SIGNS:
        if sign.search(logs):
            if status == 0:
                return LaunchError(f"the model container could not download {repo} from {s.endpoint}, and it is not "
                                   f"in the cache volume {volume_name()}",
                                   "check that the container can reach the hub (HF_ENDPOINT, proxy variables), "
                                   "or give a local folder")
            return _refusal(repo, status, "see the log lines above", has_token, s.endpoint)
    return None
