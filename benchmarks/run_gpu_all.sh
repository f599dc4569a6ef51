#!/usr/bin/env bash
# Every GPU benchmark and GPU-marked test in one command, for a short-lived GPU machine.
#   bash benchmarks/run_gpu_all.sh              # every part; results + log in $OUT (default ./gpu_out)
#   bash benchmarks/run_gpu_all.sh tdn pytest-gpu   # only the named parts (tdn potential mskf training data pytest-gpu)
# Each part has its own time limit so one slow part cannot starve the others. Packages the GPU image lacks
# (ase, netCDF4, vesin, lmdb) are installed from wheels in .whl/ when that folder is present.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_log.txt"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; python3 -c "import torch, e3nn; print('torch', torch.__version__, 'e3nn', e3nn.__version__)"; } >>"$LOG" 2>&1
PARTS=" ${*:-tdn potential mskf training data pytest-gpu} "
part() {  # part NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    [[ $PARTS == *" $name "* ]] || return 0
    echo "=== $name start $(date +%T) (limit ${limit}s)" >>"$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== $name rc=$? end $(date +%T)" >>"$LOG"
}
part tdn 330 python3 benchmarks/gpu_tdn.py --out "$OUT" --deadline 290
part potential 100 python3 benchmarks/gpu_potential.py --out "$OUT"
part mskf 70 python3 benchmarks/gpu_mskf.py --out "$OUT"
part training 50 python3 benchmarks/gpu_training.py --out "$OUT"
part data 50 python3 benchmarks/gpu_data.py --out "$OUT"
part pytest-gpu 90 python3 -m pytest -q -m gpu tests -p no:cacheprovider
tail -n 3 "$LOG"
