"""The data step of ``sciml quickstart`` runs on the bundled samples only (no ../shared needed)."""

from __future__ import annotations

from data_tools.dataset import AtomsDataset
from sciml.cli.data import quickstart_step


def test_quickstart_step_converts_bundled_samples(tmp_path, capsys):
    quickstart_step(tmp_path)
    out = capsys.readouterr().out
    assert "frames:    500" in out and "frames:    101" in out and "checksums: verified OK" in out
    assert "DataLoader (2 workers" in out and "frames/s" in out
    acac = AtomsDataset(tmp_path / "data" / "acac_train_300K.h5")
    assert len(acac) == 500 and sorted(acac.element_reference_energies) == [1, 6, 8]
    assert len(AtomsDataset(tmp_path / "data" / "oc20_toy_c3h8.h5").groups) == 101
