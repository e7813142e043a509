"""Facts about this host: BuildKit client, NVIDIA GPUs (NVML), other accelerators, pip and proxy settings.

Pure reads; nothing here changes the host. Planning takes these facts as a ``HostFacts`` value, so a plan for
another host can be made by passing other facts.
"""

from __future__ import annotations

import configparser
import functools
import glob
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LazyllmError


# ------------------------------------------------------------------ BuildKit client

@dataclass(frozen=True)
class BuildkitClient:
    kind: str            # "buildx" (docker buildx build) or "builtin" (DOCKER_BUILDKIT=1 docker build)
    path: str            # the docker CLI binary
    version: str
    builder: str = ""    # buildx: the builder used (its driver is "docker": it sees and loads local images)
    driver: str = ""

    def build_argv(self) -> list[str]:
        if self.kind != "buildx":
            return [self.path, "build"]
        return [self.path, "buildx", "build"] + (["--builder", self.builder] if self.builder else []) + ["--load"]

    def build_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kind == "builtin":
            env["DOCKER_BUILDKIT"] = "1"
        return env

    def describe(self) -> str:
        if self.kind == "buildx":
            how = "docker buildx build" + (f" (builder {self.builder}, driver {self.driver})" if self.builder else "")
        else:
            how = "built-in BuildKit (DOCKER_BUILDKIT=1)"
        return f"{self.path} {self.version}: {how}"


BUILDKIT_HINT = ("install the buildx plugin (Debian/Ubuntu: docker-buildx or docker-buildx-plugin), or on "
                 "Debian 12 the docker.io package, whose 20.10 client has BuildKit built in")


def _docker_clis() -> list[str]:
    seen: list[str] = []
    for path in (os.environ.get("LAZYLLM_DOCKER_CLI"), shutil.which("docker"), "/usr/bin/docker",
                 "/usr/local/bin/docker"):
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in map(os.path.realpath, seen):
            seen.append(path)
    return seen


def _run(argv: list[str], timeout: float = 10) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def buildkit_client() -> BuildkitClient | None:
    """The first docker CLI that can build with BuildKit: a buildx plugin first, else a client from before
    23.0 (those have BuildKit built in; newer ones refuse DOCKER_BUILDKIT=1 without buildx)."""
    clis = _docker_clis()
    for path in clis:
        out = _run([path, "buildx", "version"])
        if out:
            builder, driver = buildx_builder(path)
            return BuildkitClient("buildx", path, out.split()[1] if len(out.split()) > 1 else out, builder, driver)
    for path in clis:
        version = _run([path, "version", "--format", "{{.Client.Version}}"])
        if version and _major(version) is not None and 18 <= _major(version) < 23:
            return BuildkitClient("builtin", path, version)
    return None


def _builder_facts(text: str | None) -> tuple[str, str]:
    """(name, driver) from ``docker buildx inspect`` output."""
    facts = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Name", "Driver") and key.strip() not in facts:
            facts[key.strip()] = value.strip()
    return facts.get("Name", ""), facts.get("Driver", "")


def buildx_builder(path: str) -> tuple[str, str]:
    """The buildx builder to build with, and its driver. Layers are built ``FROM`` the local tag of the layer
    below, which only the ``docker`` driver sees (a ``docker-container`` builder would try to pull it): the
    selected builder when its driver is ``docker``, else the engine's own builder (named after the context)."""
    name, driver = _builder_facts(_run([path, "buildx", "inspect"]))
    if driver == "docker" or not name:
        return name, driver
    own = _run([path, "context", "show"]) or "default"
    name2, driver2 = _builder_facts(_run([path, "buildx", "inspect", own]))
    return (name2, driver2) if driver2 == "docker" else (name, driver)


def _major(version: str) -> int | None:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return None


# ------------------------------------------------------------------ NVIDIA (NVML)

@dataclass(frozen=True)
class MigDevice:
    """A MIG device of a GPU in MIG mode: ``--gpus device=0:1`` (GPU 0, MIG device 1) or its ``MIG-`` UUID."""

    gpu: int                         # the parent GPU's index
    index: int                       # NVML's MIG device index on that GPU (what "0:1" and CDI's name count)
    uuid: str                        # MIG-...
    name: str = ""
    memory_mib: int = 0

    @property
    def device_id(self) -> str:
        return f"{self.gpu}:{self.index}"


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mib: int
    compute_capability: str          # "9.0"
    mig_enabled: bool = False        # MIG mode is on: CUDA runs on its MIG devices, not on the whole GPU
    mig: tuple[MigDevice, ...] = ()


@dataclass(frozen=True)
class NvidiaFacts:
    present: bool
    reason: str = ""                 # why not present / what failed
    driver_version: str | None = None
    cuda_driver: str | None = None   # highest CUDA the driver runs, "12.4"
    gpus: tuple[Gpu, ...] = ()

    @property
    def mig_devices(self) -> tuple[MigDevice, ...]:
        return tuple(m for g in self.gpus for m in g.mig)

    def to_dict(self) -> dict:
        return asdict(self)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_library_loads() -> bool:
    """The library pynvml itself loads (``libnvidia-ml.so.1`` on Linux): importing pynvml costs 15 ms, a third of
    a CPU host's planning overhead, and is pointless when the library is not there. Other systems: ask pynvml."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def nvidia_facts(nvml=None) -> NvidiaFacts:
    """Driver and GPUs (with their MIG devices) through nvidia-ml-py. A missing NVML library means 'no NVIDIA
    GPU', not a crash. ``nvml``: a stand-in for the ``pynvml`` module (tests)."""
    if nvml is None:
        if not _nvml_library_loads():
            return NvidiaFacts(False, "no NVIDIA driver (NVML library not found)")
        try:
            import pynvml as nvml
        except ImportError:
            return NvidiaFacts(False, "nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError_LibraryNotFound:
        return NvidiaFacts(False, "no NVIDIA driver (NVML library not found)")
    except nvml.NVMLError as exc:
        return NvidiaFacts(False, f"NVML failed to initialise: {exc}")
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda_int = nvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda = f"{cuda_int // 1000}.{(cuda_int % 1000) // 10}"
        gpus = tuple(_gpu(nvml, i) for i in range(nvml.nvmlDeviceGetCount()))
        if not gpus:
            return NvidiaFacts(False, "NVIDIA driver loaded but no GPU found", driver, cuda)
        return NvidiaFacts(True, "", driver, cuda, gpus)
    except nvml.NVMLError as exc:
        return NvidiaFacts(False, f"NVML query failed: {exc}")
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def _mib(nvml, handle) -> int:
    return int(nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024))


def _gpu(nvml, i: int) -> Gpu:
    h = nvml.nvmlDeviceGetHandleByIndex(i)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(h)
    migs = _mig_devices(nvml, h, i)
    return Gpu(index=i, uuid=_text(nvml.nvmlDeviceGetUUID(h)), name=_text(nvml.nvmlDeviceGetName(h)),
               memory_mib=_mib(nvml, h), compute_capability=f"{major}.{minor}", mig_enabled=migs is not None,
               mig=migs or ())


def _mig_devices(nvml, handle, gpu: int) -> tuple[MigDevice, ...] | None:
    """The MIG devices of a GPU in MIG mode; None when MIG is off (or the GPU has no MIG)."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:                  # NOT_SUPPORTED: a GPU without MIG
        return None
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return None
    out = []
    for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
        except nvml.NVMLError:              # NOT_FOUND: no MIG device at this index
            continue
        out.append(MigDevice(gpu, j, _text(nvml.nvmlDeviceGetUUID(mig)), _text(nvml.nvmlDeviceGetName(mig)),
                             _mib(nvml, mig)))
    return tuple(out)


# ------------------------------------------------------------------ container GPU plumbing, other accelerators

CDI_DIRS = ("/etc/cdi", "/var/run/cdi", "/run/cdi")


def cdi_nvidia_specs() -> list[str]:
    """CDI spec files that declare nvidia.com/gpu devices."""
    found = []
    for d in CDI_DIRS:
        for path in sorted(glob.glob(os.path.join(d, "*.yaml")) + glob.glob(os.path.join(d, "*.json"))):
            try:
                if "nvidia.com/gpu" in Path(path).read_text(errors="replace"):   # the spec's ``kind``
                    found.append(path)
            except OSError:
                continue
    return found


NVIDIA_HOOK = "nvidia-container-runtime-hook"     # on dockerd's PATH, the engine serves --gpus (DeviceRequests)
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"    # systemd's PATH, dockerd's


@dataclass(frozen=True)
class GpuPlumbing:
    """How the engine can hand NVIDIA GPUs to containers: what its ``GET /info`` says, and what this host has
    (the engine's host, as a rule). ``launch.gpu_checks.gpu_route`` decides from these."""

    runtimes: tuple[str, ...] = ()        # GET /info Runtimes: "nvidia" once the toolkit's runtime is registered
    hook: str | None = None               # path of nvidia-container-runtime-hook on the PATH (+ the daemon's)
    cdi_spec_dirs: tuple[str, ...] = ()   # GET /info CDISpecDirs (Docker 25+): empty or absent = CDI is off
    cdi_specs: tuple[str, ...] = ()       # spec files on this host declaring nvidia.com/gpu

    @classmethod
    def from_info(cls, info: dict | None, hook: str | None = None, cdi_specs=()) -> "GpuPlumbing":
        info = info or {}
        return cls(tuple(sorted(info.get("Runtimes") or {})), hook, tuple(info.get("CDISpecDirs") or ()),
                   tuple(cdi_specs))


def nvidia_hook() -> str | None:
    path = os.pathsep.join(p for p in (os.environ.get("PATH"), DAEMON_PATH) if p)
    return shutil.which(NVIDIA_HOOK, path=path)


def gpu_plumbing(info: dict | None) -> GpuPlumbing:
    """``info``: the engine's ``GET /info`` (None: no engine, e.g. a dry run); the hook and the CDI specs are
    looked up here (or read from the facts file, ``LAZYLLM_HOST_FACTS``)."""
    facts = facts_file()
    if facts is not None:
        return GpuPlumbing.from_info(info, facts.get("nvidia_hook"), facts.get("cdi_specs") or ())
    return GpuPlumbing.from_info(info, nvidia_hook(), cdi_nvidia_specs())


def device_gids(paths=None) -> dict[str, tuple[int, ...]]:
    """The groups owning host device nodes: path -> gids (a folder such as /dev/dri: the nodes in it); missing
    paths are left out; None: every accelerator node (Ascend, AMD). The renderers' ``gids``: the image's
    /etc/group may lack the names (HwHiAiUser) or number them otherwise."""
    import stat
    facts = facts_file() if paths is None else None
    if facts is not None:
        return {path: tuple(gids) for path, gids in (facts.get("device_gids") or {}).items()}
    if paths is None:
        from .launch.gpu import AMD_DEVICES, ASCEND_CONTROL
        paths = ascend_devices() + list(ASCEND_CONTROL) + list(AMD_DEVICES)
    out: dict[str, tuple[int, ...]] = {}
    for path in paths:
        nodes = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else [path]
        gids: list[int] = []
        for node in nodes:
            try:
                st = os.stat(node)
            except OSError:
                continue
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and st.st_gid not in gids:
                gids.append(st.st_gid)
        if gids:
            out[path] = tuple(gids)
    return out


def amd_devices() -> list[str]:
    facts = facts_file()
    if facts is not None:
        return list(facts.get("amd_devices") or [])
    return [p for p in ("/dev/kfd",) if os.path.exists(p)] + sorted(glob.glob("/dev/dri/renderD*"))


def ascend_devices() -> list[str]:
    facts = facts_file()
    if facts is not None:
        return list(facts.get("ascend_devices") or [])
    return sorted(glob.glob("/dev/davinci[0-9]*"))


# ------------------------------------------------------------------ pip and network settings

@dataclass(frozen=True)
class PipSettings:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None
    sources: tuple[str, ...] = ()    # config files read

    def local_find_links(self) -> list[str]:
        """find-links that are folders on this host (they can be mounted into builds)."""
        out = []
        for item in self.find_links:
            path = item[len("file://"):] if item.startswith("file://") else item
            if "://" not in path and os.path.isdir(path):
                out.append(path)
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _pip_config_files() -> list[str]:
    home = os.path.expanduser("~")
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    files = ["/etc/pip.conf"] + [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs]
    files += [os.path.join(home, ".pip", "pip.conf"),
              os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf")]
    if os.environ.get("VIRTUAL_ENV"):
        files.append(os.path.join(os.environ["VIRTUAL_ENV"], "pip.conf"))
    if os.environ.get("PIP_CONFIG_FILE") and os.environ["PIP_CONFIG_FILE"] != os.devnull:
        files.append(os.environ["PIP_CONFIG_FILE"])
    return files


def pip_settings(env: dict[str, str] | None = None) -> PipSettings:
    """pip's own precedence: config files (global < user < site), then PIP_* variables."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    read = []
    for path in _pip_config_files():
        if not os.path.isfile(path):
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        read.append(path)
        for section in ("global", "install"):
            if parser.has_section(section):
                values.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    for key, value in env.items():
        if key.startswith("PIP_"):
            values[key[4:].lower().replace("_", "-")] = value

    def many(key: str) -> tuple[str, ...]:
        return tuple(values.get(key, "").split())

    return PipSettings(index_url=values.get("index-url") or None, extra_index_urls=many("extra-index-url"),
                       find_links=many("find-links"), trusted_hosts=many("trusted-host"),
                       cert=values.get("cert") or None, sources=tuple(read))


def ca_bundle(env: dict[str, str] | None = None) -> str | None:
    """The CA bundle builds and containers should trust: PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, pip's cert."""
    env = os.environ if env is None else env
    for key in ("LAZYLLM_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if env.get(key) and os.path.isfile(env[key]):
            return env[key]
    cert = pip_settings(env).cert
    return cert if cert and os.path.isfile(cert) else None


PROXY_KEYS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def proxy_env(env: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: env[k] for k in PROXY_KEYS if env.get(k)}


# ------------------------------------------------------------------ everything planning needs

@dataclass(frozen=True)
class HostFacts:
    """What planning needs to know about the host; tests build these directly."""

    arch: str = "x86_64"
    nvidia: NvidiaFacts = field(default_factory=lambda: NvidiaFacts(False, "not probed"))
    ascend: bool = False
    amd: bool = False


@functools.lru_cache(maxsize=1)
def host_facts() -> HostFacts:
    """Read once per command (NVML is loaded once, however many units a service plans); from the facts file when
    ``LAZYLLM_HOST_FACTS`` names one."""
    facts = facts_file()
    if facts is not None:
        return _facts_from(facts)
    return HostFacts(arch=os.uname().machine, nvidia=nvidia_facts(), ascend=bool(ascend_devices()),
                     amd=bool(amd_devices()))


# ------------------------------------------------------------------ the facts of another host, from a file
#
# A process that plans and launches for the engine's host without seeing it (the inference controller, in a
# container: no NVML, no /dev nodes, no nvidia hook, no CDI specs) reads what the CLI saw on the host from a JSON
# file the CLI wrote, named by LAZYLLM_HOST_FACTS. Planning then gives it exactly the image names the CLI computes.

FACTS_ENV = "LAZYLLM_HOST_FACTS"
FACTS_VERSION = 1
FACTS_HINT = "unset LAZYLLM_HOST_FACTS to probe this host, or write the file with host.facts_document()"


class HostFactsError(LazyllmError):
    """The facts file named by LAZYLLM_HOST_FACTS cannot be used (never silently replaced by this host's facts)."""


def facts_document() -> dict:
    """What this host looks like to planning and launching, as plain JSON (the facts file's content)."""
    facts = host_facts()
    return {"version": FACTS_VERSION, "arch": facts.arch, "nvidia": facts.nvidia.to_dict(), "ascend": facts.ascend,
            "amd": facts.amd, "nvidia_hook": gpu_plumbing(None).hook, "cdi_specs": list(gpu_plumbing(None).cdi_specs),
            "ascend_devices": ascend_devices(), "amd_devices": amd_devices(),
            "device_gids": {path: list(gids) for path, gids in device_gids().items()}}


@functools.lru_cache(maxsize=4)
def _read_facts(path: str) -> dict:
    import json
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HostFactsError(f"{FACTS_ENV}={path}: cannot read the host facts file "
                             f"({getattr(exc, 'strerror', None) or exc})", FACTS_HINT) from None
    if not isinstance(data, dict) or data.get("version") != FACTS_VERSION or not isinstance(data.get("nvidia"), dict):
        raise HostFactsError(f"{FACTS_ENV}={path}: not a host facts file of version {FACTS_VERSION}", FACTS_HINT)
    try:
        _facts_from(data)
    except (TypeError, ValueError) as exc:
        raise HostFactsError(f"{FACTS_ENV}={path}: malformed host facts ({exc})", FACTS_HINT) from None
    return data


def facts_file() -> dict | None:
    """The facts file's content when ``LAZYLLM_HOST_FACTS`` names one (read once), else None."""
    path = os.environ.get(FACTS_ENV)
    return _read_facts(path) if path else None


def _facts_from(data: dict) -> HostFacts:
    nv = dict(data["nvidia"])
    gpus = []
    for g in nv.pop("gpus", None) or ():
        g = dict(g)
        mig = tuple(MigDevice(**m) for m in g.pop("mig", None) or ())
        gpus.append(Gpu(**g, mig=mig))
    return HostFacts(arch=str(data.get("arch") or "x86_64"), nvidia=NvidiaFacts(**nv, gpus=tuple(gpus)),
                     ascend=bool(data.get("ascend")), amd=bool(data.get("amd")))
