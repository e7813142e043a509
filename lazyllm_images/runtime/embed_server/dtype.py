"""The numeric mode an embedding model runs in on the CPU, and how ``--dtype auto`` picks it (pure: standard library
only; the conversions that need torch are in ``model.py``).

Modes: ``fp32`` (the weights as shipped), ``bf16`` (the Linear layers' weights and products in bfloat16, the rest
in fp32: faster where the CPU has AVX-512 BF16 or AMX, slow emulation where it has neither; cosine to fp32 about
0.99998 on the bench corpus), ``int8`` (torch's dynamic quantization of the Linear layers, per-channel weights:
fast with VNNI, but on small sentence encoders such as all-MiniLM-L6-v2 its vectors drift too far from fp32's, so
``auto`` measures it and rejects it there).

``auto`` = at start-up, encode ``PROBE_TEXTS`` in fp32 and in each candidate mode this CPU can run natively; keep
the candidates whose vectors have a cosine of at least ``MIN_COSINE`` to fp32's on every probe text (the short
texts first: a mode that already drifts there is rejected without encoding the paragraphs); time them against fp32
(one thread's CPU time, interleaved runs: one round when ``settled`` says it decides, else the best of two) and
keep the fastest, provided it beats fp32 by ``MIN_GAIN`` (timings this short are noisy: a tie stays fp32).
``choose`` is that decision, given the measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

DTYPES = ("auto", "fp32", "bf16", "int8")
MIN_COSINE = 0.99
MIN_GAIN = 1.15            # a mode must take at most 1/1.15 of fp32's time to replace it

# A few fixed texts of the lengths an embedding server sees: a query, sentences, paragraphs of about 100 words.
PROBE_TEXTS = (
    "How do I rotate the credentials of a service account?",
    "A man is eating a piece of bread.",
    "The stock market fell sharply today after the central bank raised interest rates again.",
    ("Layered container images let a team rebuild only the part of a model-serving stack that changed: the "
     "operating system, the Python interpreter, the deep-learning framework and the inference server each sit in "
     "their own layer, cached and shared between the images that use them. A change to the server's settings "
     "rebuilds one thin layer in seconds instead of reinstalling gigabytes of wheels, and two services that share "
     "a framework share its layer on disk and in the registry."),
    ("Photosynthesis converts light energy into chemical energy. In the chloroplasts of plant cells, chlorophyll "
     "absorbs mostly blue and red light; the energy splits water molecules, releasing oxygen, and drives the "
     "synthesis of ATP and NADPH. In the Calvin cycle these carry the energy that fixes carbon dioxide from the air "
     "into three-carbon sugars, from which the plant builds glucose, starch and cellulose. Nearly all the oxygen "
     "in the atmosphere and most of the food chains on land begin with this process."),
    ("The with statement wraps the execution of a block with methods defined by a context manager: __enter__ is "
     "called on entry and its result bound to the target of the as clause, and __exit__ is called on exit, even "
     "when the block raises an exception, with the exception's type, value and traceback. If __exit__ returns a "
     "true value the exception is suppressed. Files, locks and database transactions are the usual examples."),
    "Der schnelle braune Fuchs springt über den faulen Hund, während die Sonne hinter den Bergen untergeht.",
    "Error 503: the model is still loading; retry shortly.",
)


@dataclass(frozen=True)
class Probe:
    """One mode's measurement at start-up: seconds to encode the probe texts (best run; None when not timed) and
    the lowest cosine of its vectors to fp32's (None for fp32 itself or when it could not run)."""

    mode: str
    seconds: float | None = None
    cosine: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Choice:
    mode: str
    reason: str
    probes: tuple[Probe, ...] = ()
    probe_seconds: float | None = None     # wall time the whole measurement took

    def as_dict(self) -> dict:
        return {"mode": self.mode, "reason": self.reason, "probe_seconds": self.probe_seconds,
                "probes": [{k: v for k, v in asdict(p).items() if v is not None} for p in self.probes]}


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first processor in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def read_cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        return cpu_flags(Path(path).read_text())
    except OSError:
        return set()


def candidates(flags: set[str]) -> list[str]:
    """The non-fp32 modes worth measuring on a CPU with these flags: bf16 only where it is native (AVX-512 BF16
    or AMX); int8 where the CPU has VNNI (AVX-512 or AVX) for its integer dot products."""
    out = []
    if flags & {"avx512_bf16", "amx_bf16"}:
        out.append("bf16")
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        out.append("int8")
    return out


SETTLE_MARGIN = 1.25       # after one timing round, a speed-up this far from MIN_GAIN either way is the answer


def settled(seconds: dict[str, float], min_gain: float = MIN_GAIN, margin: float = SETTLE_MARGIN) -> bool:
    """Whether one round of timings already decides ``choose``: every candidate's speed-up over fp32 is clearly
    above ``min_gain`` or clearly below it (by ``margin``), and the fastest clear winner leads the next one by
    ``margin`` too. Only a close call costs a second round (it was a third of the start-up check's time)."""
    base = seconds.get("fp32")
    if not base or base <= 0:
        return True
    gains = sorted((base / t for m, t in seconds.items() if m != "fp32" and t > 0), reverse=True)
    if any(min_gain / margin < g < min_gain * margin for g in gains):
        return False
    winners = [g for g in gains if g >= min_gain]
    return len(winners) < 2 or winners[0] >= winners[1] * margin


def choose(probes: list[Probe] | tuple[Probe, ...], min_cosine: float = MIN_COSINE,
           min_gain: float = MIN_GAIN) -> Choice:
    """The fastest mode whose cosine to fp32 is at least ``min_cosine`` and whose time is at most fp32's divided
    by ``min_gain``; fp32 when none is (or when fp32 itself has no timing)."""
    probes = tuple(probes)
    base = next((p for p in probes if p.mode == "fp32"), None)
    if base is None or base.seconds is None or base.seconds <= 0:
        return Choice("fp32", "no fp32 timing to compare with", probes)
    best: Probe | None = None
    rejected = []
    for p in probes:
        if p.mode == "fp32":
            continue
        if p.error is not None or p.cosine is None:
            rejected.append(f"{p.mode}: failed ({p.error or 'not measured'})")
        elif p.cosine < min_cosine:
            rejected.append(f"{p.mode}: cosine {p.cosine:.4f} < {min_cosine}")
        elif p.seconds is None:
            rejected.append(f"{p.mode}: not timed")
        elif p.seconds * min_gain > base.seconds:
            rejected.append(f"{p.mode}: {base.seconds / p.seconds:.2f}x fp32, under the {min_gain}x needed")
        elif best is None or p.seconds < best.seconds:
            best = p
    if best is None:
        return Choice("fp32", "; ".join(rejected) or "no other mode to try", probes)
    why = f"{best.mode}: {base.seconds / best.seconds:.2f}x fp32's speed, cosine {best.cosine:.4f}"
    return Choice(best.mode, "; ".join([why, *rejected]), probes)
