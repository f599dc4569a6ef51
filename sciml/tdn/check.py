"""Numerical checks of a tensor product: equivariance error and agreement with the exact CG product."""

from __future__ import annotations

import torch
from torch import nn

from sciml.tdn.cg import irreps_string
from sciml.utils.dtype import default_dtype


def random_inputs(lmax: int, channels: int, edges: int, num_paths: int | None = None, seed: int = 0,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x [E, d, C], edge vectors [E, 3], y = component-normalised SH of them [E, d], w [E, C] or [E, P, C])."""
    from e3nn import o3

    g = torch.Generator().manual_seed(seed)
    d = (lmax + 1) ** 2
    x = torch.randn(edges, d, channels, generator=g, dtype=dtype)
    vec = torch.randn(edges, 3, generator=g, dtype=dtype)
    y = o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=True, normalization="component")
    wshape = (edges, channels) if num_paths is None else (edges, num_paths, channels)
    w = torch.randn(*wshape, generator=g, dtype=dtype)
    return tuple(t.to(device) for t in (x, vec, y, w))  # type: ignore[return-value]


def equivariance_error(tp: nn.Module, lmax: int, channels: int, parity: str, edges: int = 16, trials: int = 4,
                       seed: int = 0, reflections: bool | None = None) -> float:
    """max over random rotations g of ||tp(D x, SH(g v), w) - D tp(x, SH(v), w)|| / ||tp(x, SH(v), w)||.

    With ``reflections`` (default: True for parity "o3") every other trial uses an improper g (rotation times -1),
    acting on natural-parity features. Runs in the module's dtype/device; the Wigner D matrices are computed in that
    dtype too (e3nn builds them in torch's default dtype, which would cap a float64 check at ~1e-6).
    """
    from e3nn import o3

    p = next(iter(tp.buffers()))
    dtype, device = p.dtype, p.device
    reflections = (parity == "o3") if reflections is None else reflections
    num_paths = getattr(tp, "num_paths", None) if getattr(tp, "weights", "per_path") == "per_path" else None
    x, vec, y, w = random_inputs(lmax, channels, edges, num_paths, seed, dtype, device)
    irreps = o3.Irreps(irreps_string(lmax, 1, parity))
    g = torch.Generator().manual_seed(seed + 1)
    ref = tp(x, y, w)
    worst = 0.0
    for t in range(trials):
        rot = random_rotation(g, dtype)
        if reflections and t % 2 == 1:
            rot = -rot
        with default_dtype(dtype):
            dmat = irreps.D_from_matrix(rot).to(device)
        y_rot = o3.spherical_harmonics(list(range(lmax + 1)), vec @ rot.to(device).T, normalize=True,
                                       normalization="component")
        out_rot = tp(torch.einsum("kd,edc->ekc", dmat, x), y_rot, w)
        err = (out_rot - torch.einsum("kd,edc->ekc", dmat, ref)).norm() / ref.norm()
        worst = max(worst, float(err))
    return worst


def random_rotation(g: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform random rotation (QR of a Gaussian matrix with sign fix, det +1)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def relative_difference(a: nn.Module, b: nn.Module, lmax: int, channels: int, edges: int = 16, seed: int = 0) -> float:
    """||a(x, y, w) - b(x, y, w)|| / ||b(x, y, w)|| on random inputs (weights shaped for ``a``)."""
    p = next(iter(a.buffers()))
    num_paths = getattr(a, "num_paths", None) if getattr(a, "weights", "per_path") == "per_path" else None
    x, _, y, w = random_inputs(lmax, channels, edges, num_paths, seed, p.dtype, p.device)
    ra, rb = a(x, y, w), b(x, y, w)
    return float((ra - rb).norm() / rb.norm())


def compare_devices(lmax: int, channels: int, device: str | torch.device, edges: int = 64, parity: str = "so3",
                    dtype: torch.dtype = torch.float64, fused: bool = False, contraction: str = "rank",
                    seed: int = 0) -> dict[str, float]:
    """Relative differences between CPTensorProduct (exact rank) on CPU (torch) and on ``device`` for the output and
    the gradients w.r.t. x, y, w; ``fused`` selects the Triton kernels on the device (contraction "rank" or
    "sh_first_fused"; the CPU side always runs plain torch)."""
    from sciml.tdn.cp_tp import CPTensorProduct

    results: list[list[torch.Tensor]] = []
    for dev, use_triton in (("cpu", False), (str(device), fused)):
        tp = CPTensorProduct(lmax, channels, rank="exact", parity=parity, use_triton=use_triton,
                             contraction=contraction).to(dev, dtype)
        if fused and dev != "cpu" and not tp.fused:
            raise RuntimeError("fused=True but the Triton kernels are unavailable")
        x, _, y, w = (t.to(dev).requires_grad_() for t in random_inputs(lmax, channels, edges, seed=seed, dtype=dtype))
        out = tp(x, y, w)
        grads = torch.autograd.grad(out, (x, y, w), torch.ones_like(out))
        results.append([t.detach().cpu() for t in (out, *grads)])
    names = ("out", "grad_x", "grad_y", "grad_w")
    return {n: float((a - b).norm() / a.norm()) for n, a, b in zip(names, *results)}
