"""CPTensorProduct as a module (gradients, TorchScript, checkpoints, cache), SharedLinear, layouts, CLI."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
import torch
from e3nn import o3

from sciml.tdn import CPTensorProduct, SharedLinear, from_e3nn, irreps_string, to_e3nn
from sciml.tdn.check import compare_devices, random_inputs, random_rotation
from sciml.tdn.factors import EXACT_RANKS


pytestmark = pytest.mark.usefixtures("float64_default_dtype")


@pytest.mark.parametrize("weights,contraction", [("shared", "rank"), ("shared", "sh_first"), ("per_path", "auto")])
def test_gradcheck_and_double_backward(weights, contraction):
    tp = CPTensorProduct(1, 2, weights=weights, contraction=contraction)
    x, _, y, w = random_inputs(1, 2, 3, num_paths=tp.num_paths if weights == "per_path" else None)
    inputs = tuple(t.requires_grad_() for t in (x, y, w))
    assert torch.autograd.gradcheck(tp, inputs)
    assert torch.autograd.gradgradcheck(tp, inputs)


def test_force_style_double_backward_matches_exact():
    """d/dw of a loss on dE/dy (as in force training) equals the exact-CG value at exact rank."""
    from sciml.tdn import ExactTensorProduct

    x, _, y, w = random_inputs(2, 3, 5)
    results = []
    for tp in (CPTensorProduct(2, 3), ExactTensorProduct(2, 3)):
        ww = w.clone().requires_grad_()
        yy = y.clone().requires_grad_()
        energy = tp(x, yy, ww)[:, 0].sum()
        (force,) = torch.autograd.grad(energy, yy, create_graph=True)
        (gw,) = torch.autograd.grad((force ** 2).sum(), ww)
        results.append(gw)
    assert float((results[0] - results[1]).norm() / results[1].norm()) < 1e-10


@pytest.mark.parametrize("lmax,channels", [(1, 3), (3, 16)])
def test_contraction_orders_agree(lmax, channels):
    """'rank' (x through the rank) and 'sh_first' (y contracted with M_hat first) compute the same function."""
    rank = CPTensorProduct(lmax, channels, rank="default", contraction="rank")
    sh = CPTensorProduct(lmax, channels, rank="default", contraction="sh_first")
    assert CPTensorProduct(lmax, channels, rank="default").contraction == "sh_first"  # fewer multiply-adds
    x, _, y, w = random_inputs(lmax, channels, 7)
    ref = rank(x, y, w)
    assert float((sh(x, y, w) - ref).norm() / ref.norm()) < 1e-13
    with pytest.raises(ValueError, match="contraction"):
        CPTensorProduct(1, 2, contraction="fast")


@pytest.mark.parametrize("contraction", ["rank", "sh_first"])
def test_torchscript_matches_eager(contraction):
    tp = CPTensorProduct(2, 4, contraction=contraction)
    lin = SharedLinear(2, 4, 3)
    x, _, y, w = random_inputs(2, 4, 6)
    scripted_tp, scripted_lin = torch.jit.script(tp), torch.jit.script(lin)
    assert torch.equal(scripted_tp(x, y, w), tp(x, y, w))
    assert torch.equal(scripted_lin(x), lin(x))


def test_shared_linear_equivariant_with_scalar_bias():
    lin = SharedLinear(2, 4, 3)
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([1.0, -2.0, 3.0]))
    x = torch.randn(5, 9, 4)
    out = lin(x)
    assert torch.allclose(out[:, 1:], torch.einsum("ndc,co->ndo", x[:, 1:], lin.weight))
    assert torch.allclose(out[:, 0], x[:, 0] @ lin.weight + lin.bias)
    dmat = o3.Irreps(irreps_string(2, 1, "o3")).D_from_matrix(-random_rotation(torch.Generator().manual_seed(0)))
    assert torch.allclose(lin(torch.einsum("kd,ndc->nkc", dmat, x)), torch.einsum("kd,ndc->nkc", dmat, out))


def test_layout_round_trip_and_e3nn_convention():
    x = torch.randn(4, 16, 5)
    flat = to_e3nn(x)
    assert flat.shape == (4, 80)
    assert torch.equal(from_e3nn(flat, 5), x)
    # e3nn mul-major: block l=2 starts at 5*(1+3); channel c, component m at 5*4 + c*5 + m
    assert flat[2, 5 * 4 + 3 * 5 + 1] == x[2, 4 + 1, 3]
    irreps = o3.Irreps(irreps_string(3, 5, "o3"))
    rot = random_rotation(torch.Generator().manual_seed(1))
    dense_d = o3.Irreps(irreps_string(3, 1, "o3")).D_from_matrix(rot)
    assert torch.allclose(to_e3nn(torch.einsum("kd,ndc->nkc", dense_d, x)), flat @ irreps.D_from_matrix(rot).T)
    with pytest.raises(ValueError, match="lmax"):
        to_e3nn(torch.randn(2, 5, 3))


@pytest.mark.parametrize("contraction", ["rank", "sh_first"])
def test_checkpoint_holds_factors_and_loading_never_fits(monkeypatch, contraction):
    tp = CPTensorProduct(2, 3, rank="default", contraction=contraction)
    state = tp.state_dict()
    assert {"cp_x", "cp_y", "cp_out", "factor_rel_error"} <= set(state)
    assert "cp_tensor" not in state  # derived, rebuilt on load

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted while loading")

    monkeypatch.setattr("sciml.tdn.fit.fit_factors", no_fit)
    monkeypatch.setattr("sciml.tdn.cache.load_or_fit", no_fit)
    fresh = CPTensorProduct(2, 3, rank="default", init_factors=False, contraction=contraction)
    fresh.load_state_dict(state)
    x, _, y, w = random_inputs(2, 3, 4)
    assert torch.equal(fresh(x, y, w), tp(x, y, w))
    assert list(tp.parameters()) == []  # factors are buffers, never trained
    # a checkpoint made with another rank (e.g. an older exact-rank table) loads as it was saved
    other = CPTensorProduct(2, 3, rank="exact", init_factors=False, contraction=contraction)
    other.load_state_dict(state)
    assert other.rank == tp.rank and torch.equal(other(x, y, w), tp(x, y, w))


def _load_in_process(args):
    lmax, rank, folder = args
    from sciml.tdn.cache import load_or_fit

    f = load_or_fit(lmax, "so3", rank, directory=folder)
    return f.x.tobytes(), f.rel_error


@pytest.mark.slow
def test_disk_cache_concurrent_ranks_fit_once(tmp_path):
    """Three processes (like DDP ranks) ask for an unshipped rank at once: identical factors, one file, no temps."""
    from sciml.tdn.cache import SHIPPED_DIR, file_name

    assert not (SHIPPED_DIR / file_name(1, "so3", 9)).exists()
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.map(_load_in_process, [(1, 9, tmp_path)] * 3)
    assert len({r[0] for r in results}) == 1 and results[0][1] < 1e-7
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["cp_so3_L1_R9.npz", "cp_so3_L1_R9.npz.lock"]
    # a later call reads the cache (no fit)
    assert _load_in_process((1, 9, tmp_path)) == results[0]


def test_cli_check_json(capsys):
    from sciml.cli import main

    assert main(["tdn", "check", "--lmax", "2", "--rank", "exact", "--parity", "o3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"lmax", "rank", "parity", "factor_rel_error", "equivariance_error"} <= set(result)
    assert result["rank"] == EXACT_RANKS["o3"][2] and result["parity"] == "o3"
    assert result["equivariance_error"] < 1e-10 and result["factor_rel_error"] < 1e-7
    assert main(["tdn", "check", "--lmax", "9", "--rank", "exact"]) == 2  # unknown exact rank: clean error


@pytest.mark.gpu
@pytest.mark.parametrize("contraction,fused", [("rank", False), ("sh_first", False), ("rank", True),
                                               ("sh_first_fused", True)])
def test_cpu_and_cuda_agree(contraction, fused):
    if fused:
        pytest.importorskip("triton")
    for lmax in (1, 2, 3):
        diffs = compare_devices(lmax, 16, "cuda", fused=fused, contraction=contraction)
        assert max(diffs.values()) < 1e-12, diffs


def test_bench_tp_json_rows(capsys):
    """`sciml bench tp --json`: one row per (channels, lmax) with the documented keys, timings that are real
    (positive, speed-ups consistent with them) and the SH-first order agreeing with the plain product in float32."""
    from sciml.cli import main

    torch.set_default_dtype(torch.float32)  # as a user runs it (the module's fixture restores its own setting)
    argv = ["bench", "tp", "--lmax", "1,2", "--edges", "12", "--channels", "4,8", "--repeats", "2", "--budget", "0",
            "--device", "cpu", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["channels"], r["lmax"]) for r in rows] == [(4, 1), (4, 2), (8, 1), (8, 2)]
    for r in rows:
        assert {"lmax", "channels", "edges", "device", "e3nn_fwd_ms", "cp_fwd_ms", "e3nn_fwdbwd_ms", "cp_fwdbwd_ms",
                "cp_rank"} <= set(r)
        assert r["edges"] == 12 and r["device"] == "cpu" and r["cp_rank"] == 7 * r["lmax"] ** 2
        assert min(r[k] for k in ("e3nn_fwd_ms", "cp_fwd_ms", "e3nn_fwdbwd_ms", "cp_fwdbwd_ms")) > 0
        assert r["fwdbwd_speedup"] == pytest.approx(r["e3nn_fwdbwd_ms"] / r["cp_fwdbwd_ms"])
        assert r["shfirst_rel_error"] < 1e-5
    if not torch.cuda.is_available():
        assert main(argv[:-3] + ["--device", "cuda"]) == 2  # clean error naming the missing GPU
        assert "CUDA is not available" in capsys.readouterr().err


def test_bench_e3nn_chunks_cover_every_edge_once() -> None:
    """``--e3nn-chunk``: each timed call runs the module on consecutive edge slices that cover all E edges once."""
    from sciml.bench.tp import _measure

    seen: list[tuple[int, ...]] = []

    class Recorder(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            seen.append((x.shape[0], y.shape[0], int(x[0, 0].item())))
            return x * y

    x = torch.arange(10.0).unsqueeze(1).repeat(1, 3).requires_grad_(True)
    y = torch.ones(10, 3, requires_grad=True)
    res = _measure("m", Recorder(), (x, y), torch.device("cpu"), repeats=2, budget_s=0.0, chunk=4)
    assert res["m_fwd_ms"] > 0 and res["m_fwdbwd_ms"] > 0 and res["m_peak_mib"] is None
    # 1 call for the output gradients, then warm-up + 2 timed calls of the forward and of forward+backward
    assert len(seen) == 3 * 7 and set(seen[:3]) == {(4, 4, 0), (4, 4, 4), (2, 2, 8)}
    assert all(seen[i:i + 3] == seen[:3] for i in range(0, len(seen), 3))
