"""The fused TDN kernels compile for sm_90 (H100 / H200), and the launch configurations that ship do not spill
registers. A static check: Triton's ahead-of-time compiler and its bundled ptxas, no GPU needed."""

from __future__ import annotations


import pytest

from sciml.tdn import triton_cp
from sciml.tdn.triton_resources import kernel_resources, ptxas_available

pytestmark = pytest.mark.skipif(not ptxas_available() or triton_cp.interpreting(),
                                reason="needs triton's NVIDIA backend (ptxas) and TRITON_INTERPRET unset")

EDGE_CANDIDATES = [(stage, dp, bc, nw) for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items()
                   for dp, configs in per_dp.items() for bc, nw in configs]


def _edge_constexprs(stage: str, dp: int, bc: int, precision: str) -> tuple[str, dict]:
    name, part = triton_cp.EDGE_MATRIX_STAGES[stage]
    return name, {"DP": dp, "BC": bc, "PREC": precision, **({} if part is None else {"PART": part})}


@pytest.mark.parametrize("stage,dp,bc,nw", EDGE_CANDIDATES)
def test_sh_first_candidates_compile_without_spills(stage, dp, bc, nw):
    for precision in ("ieee", "tf32x3"):
        res = kernel_resources(*_edge_constexprs(stage, dp, bc, precision), nw)
        assert res["spill_bytes"] == 0, (stage, dp, bc, nw, precision, res)
        assert 0 < res["registers"] <= 255 and res["shared_bytes"] <= 227 * 1024, res


@pytest.mark.parametrize("lmax", range(1, 7))
@pytest.mark.parametrize("channels", [16, 64])
def test_rank_kernels_automatic_config_compiles_without_spills(lmax, channels):
    meta = triton_cp.rank_config((lmax + 1) ** 2, channels)
    num_warps = meta.pop("num_warps")
    for name in ("cp_fwd_kernel", "cp_bwd_kernel"):
        res = kernel_resources(name, {**meta, "PREC": "ieee"}, num_warps)
        assert res["spill_bytes"] == 0, (name, lmax, channels, meta, res)


def test_float64_kernels_compile():
    """float64 runs the CPU-vs-CUDA checks: every kernel must compile (spills allowed, it is not the fast path)."""
    for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items():
        for dp, configs in per_dp.items():
            bc, nw = configs[0]
            assert kernel_resources(*_edge_constexprs(stage, dp, bc, "ieee"), nw, dtype="float64")["registers"] > 0
    meta = triton_cp.rank_config(16, 64)
    num_warps = meta.pop("num_warps")
    for name in ("cp_fwd_kernel", "cp_bwd_kernel"):
        assert kernel_resources(name, {**meta, "PREC": "ieee"}, num_warps, dtype="float64")["registers"] > 0


def test_autotuners_hold_exactly_the_listed_candidates():
    """One autotuner per SH-first stage and padded size, over that entry of EDGE_MATRIX_CONFIGS (built, not run)."""
    for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items():
        for dp, listed in per_dp.items():
            tuner, meta = triton_cp._edge_kernel(stage, dp)
            assert [(c.kwargs["BC"], c.num_warps) for c in tuner.configs] == list(listed)
            assert tuner.keys == ["D", "C", "PREC"] and set(tuner.keys) <= set(tuner.arg_names)
            assert meta == ({} if triton_cp.EDGE_MATRIX_STAGES[stage][1] is None
                            else {"PART": triton_cp.EDGE_MATRIX_STAGES[stage][1]})


def test_spilling_configuration_is_detected():
    """The check can fail: the rank kernels' former default (rank chunk 32, 4 warps) spills at L = 6, C = 64."""
    res = kernel_resources("cp_bwd_kernel", {"BE": 1, "CP": 64, "DP": 64, "BR": 32, "PREC": "ieee"}, 4)
    assert res["spill_bytes"] > 0, res
