"""Host facts the launch path reads: NVML enumeration (MIG devices included) through a stand-in for pynvml, the
engine's GPU plumbing from GET /info, the groups owning device nodes."""

from __future__ import annotations

import os
from types import SimpleNamespace

from lazyllm_images import host


class FakeNvml:
    """The pynvml functions ``host.nvidia_facts`` calls. GPU 0: MIG on, devices at indexes 0 and 2 of 7; GPU 1: MIG
    capable but off; GPU 2: no MIG at all (NVML answers NOT_SUPPORTED)."""

    class NVMLError(Exception):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    NVML_DEVICE_MIG_ENABLE = 1
    GPUS = [("GPU-a100", "NVIDIA A100-SXM4-40GB", (8, 0), 1), ("GPU-h100", "NVIDIA H100", (9, 0), 0),
            ("GPU-t4", "Tesla T4", (7, 5), None)]
    MIGS = {(0, 0): "MIG-aaaa-0000", (0, 2): "MIG-aaaa-2222"}

    def __init__(self):
        self.shut = False

    def nvmlInit(self): pass

    def nvmlShutdown(self): self.shut = True

    def nvmlSystemGetDriverVersion(self): return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self): return 12040

    def nvmlDeviceGetCount(self): return len(self.GPUS)

    def nvmlDeviceGetHandleByIndex(self, i): return ("gpu", i)

    def nvmlDeviceGetCudaComputeCapability(self, h): return self.GPUS[h[1]][2]

    def nvmlDeviceGetUUID(self, h): return self.MIGS[h[1:]] if h[0] == "mig" else self.GPUS[h[1]][0]

    def nvmlDeviceGetName(self, h):
        return f"{self.GPUS[h[1]][1]} MIG 1g.5gb" if h[0] == "mig" else self.GPUS[h[1]][1]

    def nvmlDeviceGetMemoryInfo(self, h): return SimpleNamespace(total=(5 if h[0] == "mig" else 40) * 2**30)

    def nvmlDeviceGetMigMode(self, h):
        mode = self.GPUS[h[1]][3]
        if mode is None:
            raise self.NVMLError("Not Supported")
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, h): return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):
        if (h[1], j) not in self.MIGS:
            raise self.NVMLError("Not Found")
        return ("mig", h[1], j)


def test_nvml_lists_mig_devices():
    nvml = FakeNvml()
    facts = host.nvidia_facts(nvml)
    assert facts.present and facts.driver_version == "550.54.15" and facts.cuda_driver == "12.4" and nvml.shut
    a100, h100, t4 = facts.gpus
    assert a100.mig_enabled and not h100.mig_enabled and not t4.mig_enabled and h100.mig == t4.mig == ()
    assert [(m.device_id, m.uuid, m.memory_mib) for m in a100.mig] == [("0:0", "MIG-aaaa-0000", 5120),
                                                                     ("0:2", "MIG-aaaa-2222", 5120)]
    assert facts.mig_devices == a100.mig and a100.mig[0].name.endswith("MIG 1g.5gb")
    assert facts.to_dict()["gpus"][0]["mig"][1]["uuid"] == "MIG-aaaa-2222"
    assert t4.compute_capability == "7.5" and a100.memory_mib == 40960


def test_nvml_failure_is_a_reason_not_a_crash():
    nvml = FakeNvml()
    nvml.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(FakeNvml.NVMLError("GPU is lost"))
    facts = host.nvidia_facts(nvml)
    assert not facts.present and "GPU is lost" in facts.reason


def test_plumbing_from_engine_info():
    info = {"Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}},
            "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}
    p = host.GpuPlumbing.from_info(info, "/usr/bin/nvidia-container-runtime-hook", ["/etc/cdi/nvidia.yaml"])
    assert p.runtimes == ("nvidia", "runc") and p.cdi_spec_dirs == ("/etc/cdi", "/var/run/cdi")
    assert host.GpuPlumbing.from_info(None) == host.GpuPlumbing()
    assert host.gpu_plumbing(None).cdi_spec_dirs == ()              # no engine (a dry run): CDI is not known to be on


def test_device_gids_read_the_device_nodes():
    got = host.device_gids(["/dev/null", "/dev", "/nonexistent/davinci9"])
    assert got["/dev/null"] == (os.stat("/dev/null").st_gid,)
    assert os.stat("/dev/null").st_gid in got["/dev"] and "/nonexistent/davinci9" not in got
    assert set(host.device_gids()) <= {*host.ascend_devices(), "/dev/davinci_manager", "/dev/devmm_svm",
                                       "/dev/hisi_hdc", "/dev/kfd", "/dev/dri"}
