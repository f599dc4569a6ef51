"""Fused Triton kernels (rank contraction and SH-first contraction) against the plain torch products.

Without a GPU the kernels run in Triton's interpreter, which must be switched on (TRITON_INTERPRET=1) before triton
is first imported (e3nn imports it), so on CPU the tests run in a subprocess started by
``test_kernels_in_interpreter_subprocess``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from sciml.tdn.cache import load_or_fit
from sciml.tdn.cp_tp import cp_product, cp_reconstruction, sh_first_product
from sciml.tdn.factors import resolve_rank
from sciml.tdn import triton_cp
from sciml.tdn.triton_cp import cp_product_fused, sh_first_fused

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HAVE_TRITON = importlib.util.find_spec("triton") is not None
#: this process can launch the kernels (GPU, or the interpreter subprocess)
CAN_RUN = HAVE_TRITON and (DEVICE == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")
kernels = pytest.mark.skipif(not CAN_RUN, reason="run by test_kernels_in_interpreter_subprocess (or on a GPU)")


@pytest.mark.skipif(CAN_RUN or not HAVE_TRITON, reason="kernels run in this process / triton missing")
@pytest.mark.slow
def test_kernels_in_interpreter_subprocess(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
                             f"--junitxml={report}"], env=env,
                            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # every test of this file ran there and passed, except this one, which skips itself (CAN_RUN is true there)
    cases = {f"{c.get('classname')}.{c.get('name')}": [child.tag for child in c]
             for c in ET.parse(report).getroot().iter("testcase")}
    this = [k for k in cases if k.endswith(".test_kernels_in_interpreter_subprocess")]
    assert len(this) == 1 and cases.pop(this[0]) == ["skipped"], result.stdout[-2000:]
    not_passed = {k: v for k, v in cases.items() if set(v) & {"failure", "error", "skipped"}}
    assert not not_passed, result.stdout[-2000:]
    assert len(cases) >= 21, result.stdout[-2000:]   # 21 when written; more as tests are added


def _case(lmax: int, channels: int, edges: int, seed: int = 0):
    f = load_or_fit(lmax, "so3", resolve_rank(lmax, "so3", "exact"))
    g = torch.Generator().manual_seed(seed)
    d = (lmax + 1) ** 2
    factors = [torch.as_tensor(a, dtype=torch.float64).to(DEVICE) for a in (f.x, f.y, f.out)]
    x, y, w = (torch.randn(*s, generator=g, dtype=torch.float64).to(DEVICE)
               for s in ((edges, d, channels), (edges, d), (edges, channels)))
    return x.requires_grad_(), y.requires_grad_(), w.requires_grad_(), factors


#: (fused product, plain torch product of the same contraction order), both called as fn(x, y, w, factors)
IMPLEMENTATIONS = {
    "rank": (lambda x, y, w, fs: cp_product_fused(x, y, w, *fs), lambda x, y, w, fs: cp_product(x, y, w, *fs)),
    "sh_first": (lambda x, y, w, fs: sh_first_fused(x, y, w, cp_reconstruction(*fs)),
                 lambda x, y, w, fs: sh_first_product(x, y, w, cp_reconstruction(*fs))),
}


@kernels
@pytest.mark.parametrize("order", IMPLEMENTATIONS)
@pytest.mark.parametrize("lmax,channels,edges", [(1, 3, 5), (2, 8, 7), (3, 16, 3), (2, 64, 2)])
def test_fused_matches_torch_forward_and_backward(order, lmax, channels, edges):
    _check_against_torch(order, lmax, channels, edges)


@kernels
@pytest.mark.parametrize("lmax,channels,edges", [(1, 3, 5), (3, 16, 3), (2, 20, 6)])
def test_sh_first_split_backward_matches_torch(lmax, channels, edges, monkeypatch):
    """The two-launch SH-first backward (gx/gw kernel, then gT kernel) gives the same gradients."""
    monkeypatch.setitem(triton_cp.SH_FIRST_BACKWARD, "mode", "split")
    _check_against_torch("sh_first", lmax, channels, edges)


def test_sh_first_backward_mode_is_checked():
    with pytest.raises(ValueError, match="fused' or 'split"):
        triton_cp.set_sh_first_backward("both")


def _check_against_torch(order: str, lmax: int, channels: int, edges: int) -> None:
    fused, plain = IMPLEMENTATIONS[order]
    x, y, w, fs = _case(lmax, channels, edges)
    ref = plain(x, y, w, fs)
    out = fused(x, y, w, fs)
    assert float(((out - ref).norm() / ref.norm()).detach()) < 1e-12
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, (x, y, w), grad), torch.autograd.grad(out, (x, y, w), grad)):
        assert float((a - b).norm() / a.norm()) < 1e-12


@kernels
@pytest.mark.parametrize("order", IMPLEMENTATIONS)
def test_fused_gradcheck_and_double_backward(order):
    fused, _ = IMPLEMENTATIONS[order]
    x, y, w, fs = _case(1, 3, 2)

    def fn(x, y, w):
        return fused(x, y, w, fs)

    assert torch.autograd.gradcheck(fn, (x, y, w))
    assert torch.autograd.gradgradcheck(fn, (x, y, w))


@kernels
@pytest.mark.parametrize("order", IMPLEMENTATIONS)
def test_fused_without_edges(order):
    fused, _ = IMPLEMENTATIONS[order]
    x, y, w, fs = _case(2, 4, 0)
    out = fused(x, y, w, fs)
    assert out.shape == (0, 9, 4)
    assert [g.shape for g in torch.autograd.grad(out.sum(), (x, y, w))] == [x.shape, y.shape, w.shape]


@kernels
@pytest.mark.parametrize("order", IMPLEMENTATIONS)
def test_fused_noncontiguous_inputs(order):
    fused, plain = IMPLEMENTATIONS[order]
    x, y, w, fs = _case(2, 20, 6)  # 20 channels: two chunks, the second partly masked
    xt = x.detach().transpose(1, 2).contiguous().transpose(1, 2)  # same values, channel-major strides
    wt = w.detach().t().contiguous().t()
    assert not xt.is_contiguous() and not wt.is_contiguous()
    ref = plain(x, y, w, fs)
    assert torch.allclose(fused(xt, y, wt, fs), ref, rtol=1e-12, atol=1e-12)


@kernels
@pytest.mark.usefixtures("float64_default_dtype")
@pytest.mark.parametrize("contraction,node", [("rank", "FusedCP"), ("sh_first_fused", "FusedEdgeMatrix")])
def test_module_dispatches_to_fused_kernel(contraction, node):
    from sciml.tdn import CPTensorProduct

    tp = CPTensorProduct(2, 4, rank="exact", contraction=contraction).to(DEVICE, torch.float64)
    assert tp.fused and (DEVICE == "cuda" or tp.interpret)
    x, y, w, _ = _case(2, 4, 5)
    ref = cp_product(x, y, w, tp.cp_x, tp.cp_y, tp.cp_out)
    out = tp(x, y, w)
    assert out.grad_fn is not None and node in type(out.grad_fn).__name__
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_sh_first_fused_refuses_large_lmax():
    with pytest.raises(ValueError, match="lmax <= 7"):
        from sciml.tdn import CPTensorProduct

        CPTensorProduct(8, 2, rank=4, contraction="sh_first_fused", init_factors=False)
