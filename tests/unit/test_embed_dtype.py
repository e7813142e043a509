"""How the embedding server's ``--dtype auto`` picks a mode from its start-up measurements (pure: no torch)."""

from __future__ import annotations

from lazyllm_images.runtime.embed_server import protocol
from lazyllm_images.runtime.embed_server.cli import parse_args
from lazyllm_images.runtime.embed_server.dtype import (
    DTYPES,
    MIN_COSINE,
    MIN_GAIN,
    PROBE_TEXTS,
    Choice,
    Probe,
    candidates,
    choose,
    cpu_flags,
)


def test_the_fastest_mode_good_enough_wins():
    choice = choose([Probe("fp32", 0.30), Probe("bf16", 0.14, 0.9999), Probe("int8", 0.10, 0.9950)])
    assert choice.mode == "int8" and "int8" in choice.reason


def test_a_faster_mode_whose_vectors_drift_is_rejected():
    choice = choose([Probe("fp32", 0.30), Probe("bf16", 0.14, 0.9999), Probe("int8", 0.08, 0.9650)])
    assert choice.mode == "bf16"
    assert "int8: cosine 0.9650 < 0.99" in choice.reason


def test_the_cosine_threshold_is_inclusive():
    assert choose([Probe("fp32", 0.3), Probe("bf16", 0.1, MIN_COSINE)]).mode == "bf16"
    assert choose([Probe("fp32", 0.3), Probe("bf16", 0.1, MIN_COSINE - 1e-6)]).mode == "fp32"


def test_a_mode_barely_faster_than_fp32_does_not_replace_it():
    # timings of a few texts are noisy: a tie, or a small gain, keeps fp32
    assert choose([Probe("fp32", 0.30), Probe("bf16", 0.29, 0.9999)]).mode == "fp32"
    assert choose([Probe("fp32", 0.30), Probe("bf16", 0.30 / MIN_GAIN, 0.9999)]).mode == "bf16"
    slower = choose([Probe("fp32", 0.30), Probe("bf16", 0.40, 0.9999)])
    assert slower.mode == "fp32" and "under the" in slower.reason


def test_failed_or_untimed_candidates_leave_fp32():
    choice = choose([Probe("fp32", 0.3), Probe("bf16", error="RuntimeError: no kernel"), Probe("int8", None, 0.999)])
    assert choice.mode == "fp32"
    assert "bf16: failed (RuntimeError: no kernel)" in choice.reason and "int8: not timed" in choice.reason


def test_without_an_fp32_timing_the_choice_is_fp32():
    assert choose([Probe("bf16", 0.1, 0.9999)]).mode == "fp32"
    assert choose([Probe("fp32", 0.0), Probe("bf16", 0.1, 0.9999)]).mode == "fp32"
    assert choose([Probe("fp32", 0.3)]).reason == "no other mode to try"


def test_custom_thresholds():
    probes = [Probe("fp32", 0.3), Probe("int8", 0.1, 0.97)]
    assert choose(probes).mode == "fp32"
    assert choose(probes, min_cosine=0.95).mode == "int8"
    assert choose(probes, min_cosine=0.95, min_gain=4).mode == "fp32"


def test_choice_as_dict_leaves_out_what_was_not_measured():
    choice = Choice("bf16", "why", (Probe("fp32", 0.3), Probe("bf16", 0.1, 0.9999), Probe("int8", cosine=0.96)),
                    0.8)
    assert choice.as_dict() == {"mode": "bf16", "reason": "why", "probe_seconds": 0.8,
                                "probes": [{"mode": "fp32", "seconds": 0.3},
                                           {"mode": "bf16", "seconds": 0.1, "cosine": 0.9999},
                                           {"mode": "int8", "cosine": 0.96}]}


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16
processor\t: 1
flags\t\t: fpu
"""


def test_candidates_follow_the_cpu_flags():
    assert cpu_flags(CPUINFO) == {"fpu", "sse2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert candidates(cpu_flags(CPUINFO)) == ["bf16", "int8"]
    assert candidates({"avx2", "avx_vnni"}) == ["int8"]             # bf16 would be emulated: not worth timing
    assert candidates({"amx_bf16", "amx_int8"}) == ["bf16", "int8"]
    assert candidates({"avx2"}) == [] and cpu_flags("no flags here") == set()
    assert cpu_flags("Features\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}   # arm64 names its line Features


def test_probe_texts_are_fixed_and_varied():
    assert 4 <= len(PROBE_TEXTS) <= 12 and len(set(PROBE_TEXTS)) == len(PROBE_TEXTS)
    lengths = sorted(len(t.split()) for t in PROBE_TEXTS)
    assert lengths[0] < 15 and lengths[-1] >= 60


def test_cli_dtype_option():
    assert parse_args(["--model", "m"]).dtype == "auto"
    assert parse_args(["--model", "m", "--dtype", "bf16"]).dtype == "bf16"
    assert DTYPES == ("auto", "fp32", "bf16", "int8")


def test_models_response_carries_the_mode_when_given():
    assert protocol.models_response("emb", 1, extra={"dtype": "bf16"})["data"][0]["dtype"] == "bf16"
    assert "dtype" not in protocol.models_response("emb", 1)["data"][0]


def test_token_groups_pack_alike_lengths_under_the_budget():
    from lazyllm_images.runtime.embed_server.worker import token_groups

    lengths = [200, 10, 190, 12, 205, 11, 180, 9]
    groups = token_groups(lengths, budget=450, most=32)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))       # every item once
    assert all(max(lengths[i] for i in g) * len(g) <= 450 for g in groups)
    assert groups == [[4, 0], [2, 6], [3, 5, 1, 7]]                                # longest first, alike together
    assert token_groups([10] * 40, budget=1024, most=32) == [list(range(32)), list(range(32, 40))]
    assert token_groups([3000, 5], budget=1024, most=32) == [[0], [1]]              # too long for the budget: alone
    assert token_groups([], budget=1024, most=32) == []


def test_one_timing_round_settles_a_clear_answer_and_a_close_call_takes_two():
    from lazyllm_images.runtime.embed_server.dtype import settled
    assert settled({"fp32": 0.27, "bf16": 0.137})                    # 1.97x: clearly over 1.15x
    assert settled({"fp32": 0.27, "bf16": 0.30})                     # slower than fp32: clearly under
    assert not settled({"fp32": 0.27, "bf16": 0.22})                 # 1.23x: near the threshold
    assert not settled({"fp32": 0.3, "bf16": 0.1, "int8": 0.11})      # two winners nearly level
    assert settled({"fp32": 0.3, "bf16": 0.1, "int8": 0.2})           # a clear fastest
    assert settled({"fp32": 0.3}) and settled({"bf16": 0.1})          # nothing to compare
