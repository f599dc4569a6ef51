"""Data pipeline benchmark: same as ``sciml bench data``; prints a markdown table, writes
benchmarks/results/bench_data.json. Usage: ``python benchmarks/bench_data.py [--frames N] [--repeats R]``."""

import argparse
import sys

from sciml.bench.data import add_arguments, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
