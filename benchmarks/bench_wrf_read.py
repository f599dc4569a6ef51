"""Reading throughput wrfout -> columns on the MSKF training file (CPU).

Measures (1) read + derive + column layout of the default inputs and targets for every output time
(``features.frame_columns``) and (2) the full ``sciml wrf extract`` to HDF5 (statistics and writing included).
Reports columns/s, compressed MB/s (file bytes) and decoded MB/s (float32 bytes of the wrfout variables read),
with the load average, since the 2 cores are shared. Usage:

    python benchmarks/bench_wrf_read.py [--file ../shared/wrf_mskf/wrf_mskf_tc_train.nc] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", type=Path, default=REPO.parent / "shared/wrf_mskf/wrf_mskf_tc_train.nc")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--time-chunk", type=int, default=1)
    p.add_argument("--json", type=Path, default=REPO / "benchmarks/bench_wrf_read.json")
    a = p.parse_args()

    import dask

    from data_tools.wrf import open_wrf
    from data_tools.wrf.extract import extract_columns
    from data_tools.wrf.features import DEFAULT_INPUTS, DEFAULT_TARGETS, frame_columns, split_features
    from data_tools.wrf.requirements import wrf_sources

    names = [*DEFAULT_INPUTS, *DEFAULT_TARGETS]
    probe = open_wrf(a.file)
    decoded = sum(probe[v].size * probe[v].dtype.itemsize for v in wrf_sources(names))
    nt, ncol = probe.sizes["Time"], probe.sizes["south_north"] * probe.sizes["west_east"]
    n_columns = nt * ncol
    file_bytes = a.file.stat().st_size

    def read_columns() -> None:
        ds = open_wrf(a.file, chunks={"Time": a.time_chunk})
        levels, single = split_features(ds, names)
        for start in range(0, nt, a.time_chunk):
            frame_columns(ds, levels, single, start, min(nt, start + a.time_chunk))

    def extract() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            extract_columns([a.file], Path(tmp) / "c.h5", time_chunk=a.time_chunk, progress=False)

    results = {}
    load_before = os.getloadavg()
    for name, fn in (("read_to_columns", read_columns), ("extract_to_hdf5", extract)):
        fn()  # warm-up (imports, page cache)
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best, med = min(times), statistics.median(times)
        results[name] = {"seconds_best": best, "seconds_median": med, "columns_per_s": n_columns / med,
                         "file_MB_per_s": file_bytes / med / 1e6, "decoded_MB_per_s": decoded / med / 1e6}
    report = {
        "file": str(a.file), "file_bytes": file_bytes, "decoded_bytes": decoded, "output_times": nt,
        "columns": n_columns, "levels": probe.sizes["bottom_top"], "features": names, "time_chunk": a.time_chunk,
        "results": results, "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "dask_scheduler": dask.config.get("scheduler", "threads (default)"),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=1))
    for name, r in results.items():
        print(f"{name:16s} {r['seconds_median']:.2f} s  {r['columns_per_s']:,.0f} columns/s  "
              f"{r['file_MB_per_s']:.1f} MB/s compressed  {r['decoded_MB_per_s']:.1f} MB/s decoded")
    print(f"load average before/after: {load_before[0]:.2f} / {report['loadavg_after'][0]:.2f} "
          f"({report['cpu_count']} cores); wrote {a.json}")


if __name__ == "__main__":
    main()
