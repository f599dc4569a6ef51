"""``sciml bench mskf``: the MSKF surrogate's speed on synthetic tiles around the shipped models' statistics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sciml.cli import main

TIMINGS = ("network_s", "network_us_per_column", "network_best_us_per_column", "network_columns_per_s",
           "step_s", "step_us_per_column", "step_best_us_per_column", "step_columns_per_s", "vs_mskf", "vs_mskf_best",
           "flops_per_column")


def test_help_lists_the_benchmark_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "mskf", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sciml bench mskf") and "--tiles" in out and "--checkpoint" in out


def test_times_both_shipped_surrogates_and_writes_the_rows(repo_dir, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench_mskf.json"
    assert main(["bench", "mskf", "--tiles", "6x4", "5x3", "--levels", "20", "--threads", "1", "--repeats", "2",
                 "--budget", "1", "--json", "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert torch.get_num_threads() == threads  # the benchmark's thread counts do not leak into the caller
    assert printed["mskf_us_per_column"] == pytest.approx(24.3e6 / (480 * 9216))
    rows = printed["rows"]
    shipped = [str(repo_dir / f"examples/pretrained/mskf-{a}.pt") for a in ("bilstm", "mlp")]
    assert [(r["checkpoint"], r["architecture"], r["ni"], r["nj"]) for r in rows] == [
        (shipped[0], "bilstm", 6, 4), (shipped[0], "bilstm", 5, 3), (shipped[1], "mlp", 6, 4),
        (shipped[1], "mlp", 5, 3)]
    for row in rows:
        assert row["nk"] == 20 and row["columns"] == row["ni"] * row["nj"] and row["threads"] == 1
        assert row["dtype"] == "float32" and row["network_repeats"] == row["step_repeats"] == 2
        for key in TIMINGS:
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert row["network_us_per_column"] == pytest.approx(1e6 * row["network_s"] / row["columns"])
        assert row["network_best_us_per_column"] <= row["network_us_per_column"]
    assert rows[0]["hidden"] == 32 and rows[0]["layers"] == 3 and rows[2]["hidden"] == 128


def test_network_only_run_prints_one_line_per_case(repo_dir, capsys):
    mlp = repo_dir / "examples/pretrained/mskf-mlp.pt"
    assert main(["bench", "mskf", "--checkpoint", str(mlp), "--tiles", "4x4", "--threads", "1", "--dtypes",
                 "float32", "bfloat16", "--repeats", "1", "--network-only"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("mlp 2x128 4x4x40 threads=1 ") for line in lines)
    assert "float32: network" in lines[0] and "bfloat16: network" in lines[1] and "step" not in lines[0]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # TDN import
def test_foreign_checkpoint_is_refused(repo_dir, capsys):
    assert main(["bench", "mskf", "--checkpoint", str(repo_dir / "examples/pretrained/acac-tdn.pt")]) == 2
    assert "acac-tdn.pt was trained with task 'potential', not 'mskf'" in capsys.readouterr().err
