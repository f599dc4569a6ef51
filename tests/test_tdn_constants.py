"""CG coefficients and CP factors stay exact float64 constants when a module built in float32 is cast or saved."""

from __future__ import annotations

import io

import pytest
import torch

from sciml.tdn import CPTensorProduct
from sciml.tdn.cache import load_or_fit
from sciml.tdn.check import equivariance_error, relative_difference
from sciml.tdn.reference import E3nnTensorProduct, ExactTensorProduct

# built in torch's default dtype, float32 here (tests/conftest.py leaves it alone)


def test_float32_modules_cast_to_float64_are_exact():
    assert torch.get_default_dtype() == torch.float32
    cp = CPTensorProduct(3, 4, rank="exact", parity="o3").double()
    exact = ExactTensorProduct(3, 4, parity="o3").double()
    assert cp.cp_x.dtype == cp.cp_tensor.dtype == exact.cg.dtype == torch.float64
    # widening the float32 rounding would leave ~1e-8 here and ~1e-7 in the equivariance error
    assert relative_difference(cp, exact, 3, 4) < 1e-13
    assert equivariance_error(cp, 3, 4, "o3") < 1e-12
    shipped = load_or_fit(3, "o3", "exact")
    assert torch.equal(cp.cp_out, torch.from_numpy(shipped.out))


def test_casting_back_to_float32_rounds_the_float64_values():
    cp = CPTensorProduct(2, 4, rank="exact").double().float()
    assert cp.cp_y.dtype == torch.float32
    assert torch.equal(cp.cp_y, torch.from_numpy(load_or_fit(2, "so3", "exact").y).float())
    e3 = E3nnTensorProduct(2, 4).double()
    assert torch.equal(e3.path_weight, torch.tensor([i.path_weight for i in e3.tp.instructions], dtype=torch.float64))


def test_float32_checkpoint_keeps_float64_factors_and_loads_exactly():
    trained = CPTensorProduct(2, 4, rank="exact", parity="o3")  # float32 module
    state = trained.state_dict()
    assert state["cp_x"].dtype == torch.float64 and "cp_tensor" not in state
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = CPTensorProduct(2, 4, rank="exact", parity="o3", init_factors=False)
    loaded.load_state_dict(torch.load(buf, weights_only=True))
    assert loaded.cp_x.dtype == torch.float32  # the module keeps its dtype
    loaded = loaded.double()
    exact = ExactTensorProduct(2, 4, parity="o3").double()
    assert relative_difference(loaded, exact, 2, 4) < 1e-13
    assert torch.equal(loaded.cp_tensor, CPTensorProduct(2, 4, rank="exact", parity="o3").double().cp_tensor)


def test_old_float32_checkpoint_still_loads_at_float32_accuracy():
    """A checkpoint written with float32 factors (before they were saved in float64) loads; in float64 it is only
    as exact as those factors."""
    old = {k: (v.float() if v.is_floating_point() else v) for k, v in
           CPTensorProduct(2, 4, rank="exact").state_dict().items()}
    model = CPTensorProduct(2, 4, rank="exact", init_factors=False)
    model.load_state_dict(old)
    model = model.double()
    diff = relative_difference(model, ExactTensorProduct(2, 4).double(), 2, 4)
    assert 1e-10 < diff < 1e-6


@pytest.mark.parametrize("contraction", ["rank", "sh_first"])
def test_rank_change_on_load_updates_the_constants(contraction):
    """Loading factors of another rank resizes the buffers and their float64 masters together."""
    source = CPTensorProduct(2, 4, rank="default", contraction=contraction).double()
    target = CPTensorProduct(2, 4, rank="exact", contraction=contraction)
    target.load_state_dict(source.state_dict())
    target = target.double()
    assert target.rank == source.rank == 28 and target.cp_x.shape == (9, 28)
    x = torch.randn(5, 9, 4, dtype=torch.float64)
    y = torch.randn(5, 9, dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64)
    assert torch.allclose(target(x, y, w), source(x, y, w), rtol=0, atol=1e-14)
