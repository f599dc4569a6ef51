"""Every Python example in README.md and docs/*.md, and the example scripts relax_molecule.py, mskf_hook_tile.py and
custom_model.py, run as written from a clean directory (shipped data only). A block preceded by
``<!-- docs-example: not run (REASON) -->`` is skipped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- docs-example: not run \((?P<why>[^)]*)\) -->\n)?```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list:
    cases = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("code")) + 1
            marks = [pytest.mark.skip(reason=m.group("why"))] if m.group("why") else []
            cases.append(pytest.param(m.group("code"), id=f"{doc.relative_to(ROOT)}:{line}", marks=marks))
    return cases


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "examples").symlink_to(ROOT / "examples")  # the examples use repo-relative paths
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(cwd),
                               "PYTHONPATH": str(ROOT)})  # this checkout, whatever the venv has installed


def _check_tdn_output(stdout: str) -> None:
    """The TDN example prints the exact-rank float32 error and the e3nn-layout shape, not just 'it ran'."""
    rel_error, shape = stdout.split("\n")[:2]
    assert float(rel_error) < 1e-5 and shape == "torch.Size([1000, 1152])", stdout


#: output checks beyond "runs and prints", by the document a block is in
OUTPUT_CHECKS = {"docs/tdn.md": _check_tdn_output}


@pytest.mark.parametrize("code", _blocks())
@pytest.mark.slow
def test_doc_example_runs(code, tmp_path, request):
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    if "print(" in code:
        assert result.stdout.strip(), "the example prints nothing"
    doc = request.node.callspec.id.rsplit(":", 1)[0]
    if doc in OUTPUT_CHECKS:
        OUTPUT_CHECKS[doc](result.stdout)


@pytest.mark.slow
def test_relax_example_lowers_energy_and_forces(tmp_path):
    result = _run([str(ROOT / "examples" / "relax_molecule.py")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    forces = [float(f) for f in re.findall(r"max \|F\| = ([\d.]+)", result.stdout)]
    drop = float(re.search(r"lowered E by (-?[\d.]+) eV", result.stdout).group(1))
    assert forces[1] <= 0.05 < forces[0] and drop > 0, result.stdout


@pytest.mark.slow
def test_mskf_hook_example_returns_fortran_tendencies(tmp_path):
    result = _run([str(ROOT / "examples" / "mskf_hook_tile.py")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rthcuten: shape" in result.stdout and "Fortran-ordered False" not in result.stdout, result.stdout


@pytest.mark.slow
def test_custom_model_example_is_invariant(tmp_path):
    result = _run([str(ROOT / "examples" / "custom_model.py")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    m = re.search(r"sum of forces = ([\d.e+-]+) eV/A, E after a rotation and translation - E = ([\d.e+-]+) eV",
                  result.stdout)
    assert m and float(m.group(1)) < 1e-10 and abs(float(m.group(2))) < 1e-10, result.stdout
