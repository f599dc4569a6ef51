"""Surrogates of WRF's multi-scale Kain-Fritsch cumulus scheme (MSKF, ``cu_physics = 11``): one model family,
two architectures (:data:`ARCHITECTURES`).

* ``bilstm`` (:class:`MSKFBiLSTM`, the paper's): a column is a sequence over its ``K`` mass levels (bottom to top);
* ``mlp`` (:class:`MSKFMLP`, the fast CPU option): the whole column, flattened (features x levels), through a small
  MLP - a few batched GEMMs instead of a sequential recurrence over levels.

Both share :class:`MSKFNet`: the inputs, the normalisation, the output heads' meaning and units. Per-level inputs
(raw physical units, channel order :data:`PROFILE_INPUTS`) and column inputs (:data:`SURFACE_INPUTS`) are
normalised *inside* the model with buffers fitted on the training data, so a checkpoint or a TorchScript export
needs no side files. Outputs:

* a trigger logit (convection active in the column: deep or shallow),
* the six MSKF tendencies per level (:data:`TENDENCIES`, WRF units: K s-1 and kg kg-1 s-1, per unit mass),
* two column values (:data:`COLUMN_OUTPUTS`): PRATEC (mm s-1) and NCA (s).

:func:`apply_constraints` turns raw outputs into what MSKF would return (see its docstring). The level count and the
vertical grid (model top, eta levels) are stored as buffers: a model only meets the grid it was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: per-level model inputs (raw units): u, v (m s-1, mass points), layer-mean w (m s-1), T (K), qv (kg kg-1),
#: p (Pa), theta (K), dz8w (m), rho (kg m-3), Exner (1), W0AVG (m s-1, already updated for the current call)
PROFILE_INPUTS: tuple[str, ...] = ("u", "v", "w", "t", "qv", "p", "th", "dz8w", "rho", "pi", "w0avg")
#: column inputs: sensible heat flux (W m-2), friction velocity (m s-1), PBL height (m)
SURFACE_INPUTS: tuple[str, ...] = ("hfx", "ust", "pblh")
#: per-level features the model derives itself (appended after PROFILE_INPUTS): relative humidity (1)
DERIVED_FEATURES: tuple[str, ...] = ("rh",)
#: per-level outputs, WRF variable names
TENDENCIES: tuple[str, ...] = ("RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN")
#: column outputs, WRF variable names (mm s-1, s)
COLUMN_OUTPUTS: tuple[str, ...] = ("PRATEC", "NCA")

def saturation_mixing_ratio(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Saturation mixing ratio (kg kg-1) over water for temperature ``t`` (K) and pressure ``p`` (Pa).

    Buck (1981) with WRF's constants SVP1 = 0.6112 kPa, SVP2 = 17.67, SVP3 = 29.65 K, SVPT0 = 273.15 K, EP2 = 0.622
    (written inline so the function compiles with TorchScript).
    """
    es = 611.2 * torch.exp(17.67 * (t - 273.15) / (t - 29.65))
    return 0.622 * es / torch.clamp(p - es, min=1.0)


class MSKFNet(nn.Module):
    """What every MSKF surrogate architecture shares: normalisation buffers (fitted on training data), the stored
    vertical grid, feature derivation and the output contract.

    ``forward(profiles [N, K, 11], surface [N, 3])`` -> ``(trigger_logit [N], tendencies [N, K, 6], column [N, 2])``
    in *normalised* target units; :meth:`denormalise` converts to WRF units. Subclasses build the network in
    ``__init__`` (after this one) and re-allocate level-dependent weights in :meth:`_set_levels`.
    """

    architecture: str = ""

    def __init__(self, n_levels: int, hidden: int, layers: int):
        super().__init__()
        self.n_levels, self.hidden, self.layers = int(n_levels), int(hidden), int(layers)
        n_prof = len(PROFILE_INPUTS) + len(DERIVED_FEATURES)
        n_sfc = len(SURFACE_INPUTS)
        # normalisation (fitted by :meth:`fit_normalisation`): per-level mean/std of the profile features,
        # mean/std of the surface inputs, one scale per regression output
        self.register_buffer("prof_mean", torch.zeros(n_prof, self.n_levels))
        self.register_buffer("prof_std", torch.ones(n_prof, self.n_levels))
        self.register_buffer("sfc_mean", torch.zeros(n_sfc))
        self.register_buffer("sfc_std", torch.ones(n_sfc))
        self.register_buffer("tend_scale", torch.ones(len(TENDENCIES)))
        self.register_buffer("col_scale", torch.ones(len(COLUMN_OUTPUTS)))
        # the vertical grid the model was trained on: model top (Pa) and eta at w levels (ZNW, K+1; NaN if unknown)
        self.register_buffer("grid_p_top", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("grid_eta", torch.full((self.n_levels + 1,), float("nan"), dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # the level count comes from the data: a model built without data adopts the checkpoint's
        stored = state_dict.get(prefix + "prof_mean")
        if stored is not None and stored.shape[1] != self.n_levels:
            self._set_levels(int(stored.shape[1]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _set_levels(self, n_levels: int) -> None:
        """Re-allocate the level-dependent buffers and weights for ``n_levels`` levels (values to be loaded)."""
        self.n_levels = n_levels
        n_prof = self.prof_mean.shape[0]
        self.prof_mean = torch.zeros(n_prof, n_levels)
        self.prof_std = torch.ones(n_prof, n_levels)
        self.grid_eta = torch.full((n_levels + 1,), float("nan"), dtype=torch.float64)

    def config(self) -> dict[str, int | str]:
        """Architecture and constructor arguments (enough, with the state dict, to rebuild the model)."""
        return {"architecture": self.architecture, "n_levels": self.n_levels, "hidden": self.hidden,
                "layers": self.layers}

    # -- normalisation ---------------------------------------------------------------------------------
    def profile_features(self, profiles: torch.Tensor) -> torch.Tensor:
        """Normalised per-level features [N, K, 12] (the 11 inputs + relative humidity) from raw ``profiles``
        [N, K, 11] (any strides).

        The result is a view of channel-major memory [12, K, N]: fast when ``profiles`` is already channel-major (as
        the tile module passes it), and what the MLP multiplies without another copy.
        """
        t = profiles[:, :, 3]
        p = profiles[:, :, 5]
        qv = profiles[:, :, 4]
        qs = saturation_mixing_ratio(t, p)
        rh = torch.minimum(torch.clamp(qv, min=1e-6), qs) / qs
        prof = torch.cat([profiles.permute(2, 1, 0), rh.t().unsqueeze(0)], dim=0)        # [12, K, N]
        return prof.sub_(self.prof_mean.unsqueeze(-1)).div_(self.prof_std.unsqueeze(-1)).permute(2, 1, 0)

    def surface_features(self, surface: torch.Tensor) -> torch.Tensor:
        """Normalised column inputs [N, 3] from raw ``surface`` [N, 3]."""
        return (surface - self.sfc_mean) / self.sfc_std

    def features(self, profiles: torch.Tensor, surface: torch.Tensor) -> torch.Tensor:
        """Normalised per-level input [N, K, 12 + 3] (column inputs broadcast to every level) from raw ``profiles``
        [N, K, 11] and ``surface`` [N, 3]."""
        prof = self.profile_features(profiles)
        sfc = self.surface_features(surface).unsqueeze(1).expand(-1, prof.shape[1], -1)
        return torch.cat([prof, sfc], dim=-1)

    @torch.no_grad()
    def fit_normalisation(self, profiles: torch.Tensor, surface: torch.Tensor, tendencies: torch.Tensor,
                          column: torch.Tensor, active: torch.Tensor) -> None:
        """Fit the normalisation buffers on training columns.

        ``profiles`` [N, K, 11], ``surface`` [N, 3] raw inputs; ``tendencies`` [N, K, 6], ``column`` [N, 2] raw targets;
        ``active`` [N] bool (convection active). Target scales are RMS values over active columns.
        """
        self.prof_mean.zero_()
        self.prof_std.fill_(1.0)
        self.sfc_mean.zero_()
        self.sfc_std.fill_(1.0)
        prof = self.profile_features(profiles.double())
        mean, std = prof.mean(0).t(), prof.std(0).t()
        self.prof_mean.copy_(mean)
        # floor at 0.1 % of the magnitude so near-constant features (e.g. dz8w over a flat ocean) stay O(1)
        self.prof_std.copy_(torch.maximum(std, 1e-3 * mean.abs()).clamp(min=1e-12))
        self.sfc_mean.copy_(surface.double().mean(0))
        self.sfc_std.copy_(surface.double().std(0).clamp(min=1e-6))
        if bool(active.any()):
            self.tend_scale.copy_(tendencies[active].double().pow(2).mean((0, 1)).sqrt().clamp(min=1e-30))
            self.col_scale.copy_(column[active].double().pow(2).mean(0).sqrt().clamp(min=1e-30))

    def denormalise(self, tendencies: torch.Tensor, column: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised regression outputs -> WRF units (tendencies [N, K, 6], column [N, 2] = PRATEC mm s-1, NCA s)."""
        return tendencies * self.tend_scale, column * self.col_scale

    def normalise_targets(self, tendencies: torch.Tensor, column: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """WRF-unit targets -> normalised units (inverse of :meth:`denormalise`)."""
        return tendencies / self.tend_scale, column / self.col_scale



class MSKFBiLSTM(MSKFNet):
    """Multi-output Bi-LSTM over the vertical levels (reference size: 3 layers, 32 units per direction)."""

    architecture = "bilstm"

    def __init__(self, n_levels: int, hidden: int = 32, layers: int = 3):
        super().__init__(n_levels, hidden, layers)
        n_in = len(PROFILE_INPUTS) + len(DERIVED_FEATURES) + len(SURFACE_INPUTS)
        self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.level_head = nn.Linear(2 * hidden, len(TENDENCIES))
        # column head: per-level scores for (trigger, PRATEC, NCA) combined with learned level weights
        self.column_score = nn.Linear(2 * hidden, 1 + len(COLUMN_OUTPUTS))
        self.column_weight = nn.Parameter(torch.full((1 + len(COLUMN_OUTPUTS), self.n_levels), 1.0 / self.n_levels))
        self.column_bias = nn.Parameter(torch.zeros(1 + len(COLUMN_OUTPUTS)))

    def _set_levels(self, n_levels: int) -> None:
        super()._set_levels(n_levels)
        self.column_weight = nn.Parameter(torch.zeros(self.column_weight.shape[0], n_levels))

    def forward(self, profiles: torch.Tensor, surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """profiles [N, K, 11], surface [N, 3] -> (logit [N], tendencies [N, K, 6], column [N, 2]), normalised."""
        h, _ = self.lstm(self.features(profiles, surface))           # [N, K, 2H]
        tend = self.level_head(h)                                    # [N, K, 6]
        score = self.column_score(h)                                 # [N, K, 3]
        col = torch.einsum("nkc,ck->nc", score, self.column_weight) + self.column_bias
        return col[:, 0], tend, col[:, 1:]


def apply_constraints(logit: torch.Tensor, tendencies: torch.Tensor, column: torch.Tensor, nca_in: torch.Tensor,
                      prev_tendencies: torch.Tensor, prev_pratec: torch.Tensor, dt: float,
                      threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MSKF's physical constraints on raw outputs in WRF units; returns (tendencies, PRATEC, NCA, P(trigger)).

    ``logit`` [N], ``tendencies`` [N, K, 6], ``column`` [N, 2] (PRATEC mm s-1, NCA s); ``nca_in`` [N] (s) is the NCA
    WRF holds before the call, ``prev_tendencies`` [N, K, 6] / ``prev_pratec`` [N] the held outputs; ``dt`` (s).

    1. PRATEC >= 0.
    2. Where P(trigger) <= ``threshold``: tendencies and PRATEC exactly 0, NCA left as it came in.
    3. Triggered columns: NCA = round(NCA / dt) * dt, >= 0 (0 = shallow: recomputed every step).
    4. Columns with ``nca_in >= 0.5 dt`` (MSKF skips them: deep convection still being applied) pass through
       unchanged, and their P(trigger) is reported as 1.
    """
    prob = torch.sigmoid(logit)
    on = prob > threshold
    held = nca_in >= 0.5 * dt
    tend = torch.where(on.unsqueeze(-1).unsqueeze(-1), tendencies, 0.0)
    pratec = torch.where(on, torch.clamp(column[:, 0], min=0.0), 0.0)
    nca = torch.where(on, torch.round(torch.clamp(column[:, 1], min=0.0) / dt) * dt, nca_in)
    tend = torch.where(held.unsqueeze(-1).unsqueeze(-1), prev_tendencies, tend)
    pratec = torch.where(held, prev_pratec, pratec)
    nca = torch.where(held, nca_in, nca)
    prob = torch.where(held, torch.ones_like(prob), prob)
    return tend, pratec, nca, prob


class MSKFMLP(MSKFNet):
    """Column MLP: normalised features of all levels flattened (12 x K, channel-major) plus the 3 column inputs ->
    ``layers`` hidden layers of ``hidden`` units (SiLU) -> one linear map to every output (trigger logit, 6 x K
    tendencies channel-major, PRATEC, NCA). Cost ~2 (12K + 3) H + 2 (layers - 1) H^2 + 2 H (6K + 3) FLOPs per
    column."""

    architecture = "mlp"

    def __init__(self, n_levels: int, hidden: int = 128, layers: int = 2):
        super().__init__(n_levels, hidden, layers)
        if self.layers < 1:
            raise ValueError(f"MSKFMLP needs at least one hidden layer, got layers={layers}")
        self.inp = nn.Linear(self._n_inputs(), self.hidden)
        self.inp_surface = nn.Linear(len(SURFACE_INPUTS), self.hidden, bias=False)
        self.hidden_layers = nn.ModuleList([nn.Linear(self.hidden, self.hidden) for _ in range(self.layers - 1)])
        self.out = nn.Linear(self.hidden, self._n_outputs())

    def _n_inputs(self) -> int:
        return self.n_levels * (len(PROFILE_INPUTS) + len(DERIVED_FEATURES))

    def _n_outputs(self) -> int:
        return 1 + self.n_levels * len(TENDENCIES) + len(COLUMN_OUTPUTS)

    def _set_levels(self, n_levels: int) -> None:
        super()._set_levels(n_levels)
        self.inp = nn.Linear(self._n_inputs(), self.hidden)
        self.out = nn.Linear(self.hidden, self._n_outputs())

    def forward(self, profiles: torch.Tensor, surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """profiles [N, K, 11], surface [N, 3] -> (logit [N], tendencies [N, K, 6], column [N, 2]), normalised."""
        # feature-major GEMMs (W [out, in] @ X [in, N]): the channel-major features are used as they lie. Plain mm +
        # in-place bias add (not addmm, which TorchScript decomposes into mm + add): the export matches bit for bit
        n, k = profiles.shape[0], profiles.shape[1]
        x = self.profile_features(profiles).permute(2, 1, 0).reshape(-1, n)          # [12K, N], channel-major
        s = self.surface_features(surface).t()                                          # [3, N]
        h = torch.mm(self.inp.weight, x).add_(torch.mm(self.inp_surface.weight, s)).add_(self.inp.bias.unsqueeze(1))
        h = F.silu(h, inplace=True)                                                     # [H, N]
        for layer in self.hidden_layers:
            h = F.silu(torch.mm(layer.weight, h).add_(layer.bias.unsqueeze(1)), inplace=True)
        y = torch.mm(self.out.weight, h).add_(self.out.bias.unsqueeze(1))               # [1 + 6K + 2, N]
        tend = y[1: 1 + 6 * k].reshape(-1, k, n).permute(2, 1, 0)                        # [N, K, 6] view
        return y[0], tend, y[1 + 6 * k:].t()


#: ``model.architecture`` name -> class
ARCHITECTURES: dict[str, type[MSKFNet]] = {"bilstm": MSKFBiLSTM, "mlp": MSKFMLP}


def build_model(architecture: str, n_levels: int, hidden: int, layers: int) -> MSKFNet:
    """A fresh surrogate of ``architecture`` (:data:`ARCHITECTURES`) for ``n_levels`` levels."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown MSKF architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](n_levels, hidden=hidden, layers=layers)


def flops_per_column(model: MSKFNet) -> float:
    """Approximate FLOPs (a multiply-add = 2) of one forward pass per column (LSTM gates + heads, or MLP GEMMs)."""
    h, k = model.hidden, model.n_levels
    if isinstance(model, MSKFMLP):
        n_in = model.inp.in_features + model.inp_surface.in_features
        return float(2 * (n_in * h + (model.layers - 1) * h * h + h * model.out.out_features))
    n_in = model.lstm.input_size
    lstm = sum(2 * 2 * 4 * h * ((n_in if layer == 0 else 2 * h) + h) for layer in range(model.layers))
    heads = 2 * 2 * h * (len(TENDENCIES) + 1 + len(COLUMN_OUTPUTS))
    return float(k * (lstm + heads))


__all__ = [
    "ARCHITECTURES", "COLUMN_OUTPUTS", "DERIVED_FEATURES", "MSKFBiLSTM", "MSKFMLP", "MSKFNet", "PROFILE_INPUTS",
    "SURFACE_INPUTS", "TENDENCIES", "apply_constraints", "build_model", "flops_per_column",
    "saturation_mixing_ratio",
]
