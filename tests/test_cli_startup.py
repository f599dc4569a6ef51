"""The ``sciml`` command line starts without torch and xarray; lazily loaded parts still parse and print help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sciml.cli import COMMANDS, build_parser, main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_building_the_parser_imports_neither_torch_nor_xarray():
    code = ("import sys; from sciml.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules, 'xarray' in sys.modules)")
    assert _python(code).split() == ["False", "False"]


@pytest.mark.parametrize("argv", [["data", "convert", "a.xyz", "-o", "a.h5"], ["train", "c.yaml", "--max-steps", "3"],
                                  ["wrf", "extract", "w.nc", "-o", "c.h5"], ["bench", "--help"], ["--help"]])
def test_parsing_imports_neither_torch_nor_xarray(argv):
    code = ("import sys\nfrom sciml.cli import build_parser\n"
            f"try:\n    build_parser().parse_args({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'xarray' in sys.modules)")
    assert _python(code).split()[-2:] == ["False", "False"]


@pytest.mark.parametrize("command", [[], ["data"], ["train"], ["wrf"], ["wrf", "extract"], ["bench"], ["bench", "tp"],
                                     ["bench", "data"]])
def test_help_works(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sciml " + " ".join(command))
    if command == ["bench", "tp"]:  # the benchmark's own arguments, added when its parser is first used
        assert "--lmax" in out and "Tensor-product speed" in out
    if command == []:
        assert all(name in out for name in COMMANDS)


def test_lazy_benchmark_parser_sets_arguments_and_function():
    from sciml.bench import tp

    args = build_parser().parse_args(["bench", "tp", "--lmax", "1,2", "--edges", "5"])
    assert args.func is tp.run and args.lmax == [1, 2] and args.edges == 5 and args.channels == [64]


def test_wrf_extract_defaults_match_the_feature_module():
    from data_tools.wrf import features
    from sciml.cli import wrf_extract

    assert wrf_extract.DEFAULT_INPUTS == features.DEFAULT_INPUTS
    assert wrf_extract.DEFAULT_TARGETS == features.DEFAULT_TARGETS
    args = build_parser().parse_args(["wrf", "extract", "w.nc", "-o", "c.h5"])
    assert args.inputs == list(features.DEFAULT_INPUTS) and args.targets == list(features.DEFAULT_TARGETS)


@pytest.mark.parametrize("command", ["infer", "eval"])
def test_wrf_surrogate_commands_share_the_hook_precisions(command):
    from sciml.cli import wrf
    from sciml.coupling.hook import PRECISIONS

    assert wrf.PRECISIONS == PRECISIONS
    args = build_parser().parse_args(["wrf", command, "w.nc", "--checkpoint", "m.pt", "--precision", "bfloat16",
                                      *(["-o", "p.nc"] if command == "infer" else [])])
    assert args.precision == "bfloat16" and args.device == "cpu" and not args.quiet
    with pytest.raises(SystemExit):
        build_parser().parse_args(["wrf", command, "w.nc", "--checkpoint", "m.pt", "--precision", "float16"])
