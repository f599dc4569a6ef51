"""The fused TDN kernels compile for sm_90 (H100 / H200), and the launch configurations that ship do not spill
registers. A static check: Triton's ahead-of-time compiler and its bundled ptxas, no GPU needed."""

from __future__ import annotations

import pytest

from sciml.tdn import triton_cp
from sciml.tdn.triton_resources import kernel_resources, ptxas_available, rank_resources, stage_resources

pytestmark = pytest.mark.skipif(not ptxas_available() or triton_cp.interpreting(),
                                reason="needs triton's NVIDIA backend (ptxas) and TRITON_INTERPRET unset")

EDGE_CANDIDATES = [(stage, dp, bc, nw) for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items()
                   for dp, configs in per_dp.items() for bc, nw in configs]


@pytest.mark.parametrize("stage,dp,bc,nw", EDGE_CANDIDATES)
@pytest.mark.slow
def test_sh_first_candidates_compile_without_spills(stage, dp, bc, nw):
    for precision in ("ieee", "tf32x3"):
        res = stage_resources(stage, dp, bc, nw, precision)
        assert res["spill_bytes"] == 0, (stage, dp, bc, nw, precision, res)
        assert 0 < res["registers"] <= 255 and res["shared_bytes"] <= 227 * 1024, res


@pytest.mark.parametrize("lmax", range(1, 7))
@pytest.mark.parametrize("channels", [16, 64])
@pytest.mark.slow
def test_rank_kernels_automatic_config_compiles_without_spills(lmax, channels):
    for name in ("cp_fwd_kernel", "cp_bwd_kernel"):
        res = rank_resources(name, (lmax + 1) ** 2, channels)
        assert res["spill_bytes"] == 0, (name, lmax, channels, triton_cp.rank_config((lmax + 1) ** 2, channels), res)


@pytest.mark.slow
def test_float64_kernels_compile():
    """float64 runs the CPU-vs-CUDA checks: every kernel must compile (spills allowed, it is not the fast path)."""
    for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items():
        for dp, configs in per_dp.items():
            bc, nw = configs[0]
            assert stage_resources(stage, dp, bc, nw, dtype="float64")["registers"] > 0
    for name in ("cp_fwd_kernel", "cp_bwd_kernel"):
        assert rank_resources(name, 16, 64, dtype="float64")["registers"] > 0


def test_autotuners_hold_exactly_the_listed_candidates():
    """One autotuner per SH-first stage and padded size, over that entry of EDGE_MATRIX_CONFIGS (built, not run)."""
    for stage, per_dp in triton_cp.EDGE_MATRIX_CONFIGS.items():
        for dp, listed in per_dp.items():
            tuner, meta = triton_cp._edge_kernel(stage, dp)
            assert [(c.kwargs["BC"], c.num_warps) for c in tuner.configs] == list(listed)
            assert tuner.keys == ["D", "C", "PREC"] and set(tuner.keys) <= set(tuner.arg_names)
            part = triton_cp.EDGE_MATRIX_STAGES[stage][1]
            assert meta == ({} if part is None else {"PART": part})


def test_spilling_configuration_is_detected():
    """The check can fail: the rank kernels' former default (rank chunk 32, 4 warps) spills at L = 6, C = 64."""
    res = kernel_resources("cp_bwd_kernel", {"BE": 1, "CP": 64, "DP": 64, "BR": 32, "PREC": "ieee"}, 4)
    assert res["spill_bytes"] > 0, res
