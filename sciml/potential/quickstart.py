"""Quickstart step for the TDN potential: train a tiny model (~1 min CPU) with ``sciml train``, relax a molecule with
it via ``sciml relax``, then evaluate and use the shipped pretrained model ``examples/pretrained/acac-tdn.pt``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ACAC = REPO / "examples" / "data" / "acac" / "train_300K.xyz"
PRETRAINED = REPO / "examples" / "pretrained" / "acac-tdn.pt"

TINY_CONFIG = """\
task: potential
data:
  train: {data}
  n_train: 100
  n_val: 20
  max_atoms: 75
model:
  lmax: 1
  channels: 16
  layers: 2
loss:
  force_weight: 20.0
optim:
  lr: 0.01
schedule:
  name: cosine
  warmup_steps: 20
train:
  max_epochs: 20
  ema_decay: 0.95
  val_every: 5
  progress: false
  log_every: 100
output:
  dir: {out}
"""


def held_out_frames(path: Path, n_val: int = 50, seed: int = 0) -> list:
    """The validation frames of the shipped model's 450/50 split (data.split_seed 0) as ASE atoms."""
    import ase.io
    import numpy as np

    from data_tools.splits import split_frames

    frames = ase.io.read(str(path), ":")
    val = split_frames(np.zeros(len(frames)), {"train": 450, "val": n_val}, seed)["val"]
    return [frames[i] for i in val]


def quickstart_step(workdir: Path) -> None:
    import ase.io

    from sciml.cli import main
    from sciml.utils.atomic import atomic_path

    out = workdir / "potential"
    out.mkdir(parents=True, exist_ok=True)
    config = out / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(data=ACAC, out=out / "tiny-run"))
    print(f"training a tiny TDN potential on 100 acetylacetone DFT frames ({config}) ...", flush=True)
    main(["train", str(config)])
    molecule = out / "acac_md_frame.xyz"
    held_out = held_out_frames(ACAC)
    ase.io.write(str(molecule), held_out[0])
    print("relaxing a 300 K MD snapshot of acetylacetone with the tiny model:", flush=True)
    main(["relax", "--checkpoint", str(out / "tiny-run" / "best.pt"), str(molecule), "-o",
          str(out / "acac_relaxed_tiny.xyz"), "--fmax", "0.05", "--steps", "200"])
    if not PRETRAINED.is_file():
        print(f"(no shipped model at {PRETRAINED}; skipping the pretrained part)")
        return
    holdout = out / "acac_holdout_50.xyz"
    with atomic_path(holdout, suffix=".xyz") as tmp:
        ase.io.write(str(tmp), held_out, format="extxyz")
    print(f"shipped model {PRETRAINED.name} on its 50 held-out frames:", flush=True)
    main(["eval", "--checkpoint", str(PRETRAINED), "--data", str(holdout), "--out", str(out / "pretrained_metrics.json"),
          "--plot", str(out / "pretrained_parity.png")])
    print("relaxing the same snapshot with the shipped model:", flush=True)
    main(["relax", "--checkpoint", str(PRETRAINED), str(molecule), "-o", str(out / "acac_relaxed_pretrained.xyz"),
          "--fmax", "0.01", "--steps", "300"])
    print(f"potential outputs are in {out}")
