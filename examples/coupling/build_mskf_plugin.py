"""Build libmskf_plugin.so: C entry points ``mskf_init`` / ``mskf_step`` implemented in Python with CFFI's embedding
API (the WRF-ML route), which Fortran calls through ISO_C_BINDING (see mskf_cffi_driver.f90, docs/wrf_coupling.md).
Run once with the Python environment that has sciml installed (needs cffi and a C compiler):

    python examples/coupling/build_mskf_plugin.py [OUT_DIR]

At run time the host program's embedded interpreter must find sciml: put the environment's site-packages (and the
repository, for an editable install) on PYTHONPATH.
"""

import sys
from pathlib import Path

import cffi

C_API = """
    int mskf_init(const char *checkpoint, int nthreads);
    int mskf_step(int ni, int nk, int nj, float dt, float cudt,
                  float *u, float *v, float *w, float *t, float *qv, float *p, float *th, float *dz8w,
                  float *rho, float *pi, float *w0avg, float *hfx, float *ust, float *pblh,
                  float *nca, float *pratec, float *raincv,
                  float *rthcuten, float *rqvcuten, float *rqccuten, float *rqrcuten, float *rqicuten,
                  float *rqscuten);
"""

INIT_CODE = """
    import numpy as np
    from libmskf_plugin import ffi
    from sciml.coupling import MSKFSurrogate
    _state = {}

    def _view(ptr, shape):   # a Fortran-ordered NumPy view of WRF's buffer, no copy
        n = int(np.prod(shape))
        return np.frombuffer(ffi.buffer(ptr, 4 * n), dtype=np.float32).reshape(shape, order="F")

    @ffi.def_extern()
    def mskf_init(checkpoint, nthreads):
        _state["mskf"] = MSKFSurrogate.from_checkpoint(ffi.string(checkpoint).decode(), threads=nthreads)
        return 0

    @ffi.def_extern()
    def mskf_step(ni, nk, nj, dt, cudt, u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg, hfx, ust, pblh,
                  nca, pratec, raincv, rthcuten, rqvcuten, rqccuten, rqrcuten, rqicuten, rqscuten):
        s3, s2 = (ni, nk, nj), (ni, nj)
        names3 = ("u", "v", "t", "qv", "p", "th", "dz8w", "rho", "pi", "w0avg",
                  "rthcuten", "rqvcuten", "rqccuten", "rqrcuten", "rqicuten", "rqscuten")
        ptrs3 = (u, v, t, qv, p, th, dz8w, rho, pi, w0avg,
                 rthcuten, rqvcuten, rqccuten, rqrcuten, rqicuten, rqscuten)
        state = {k: _view(x, s3) for k, x in zip(names3, ptrs3)}
        state.update({k: _view(x, s2) for k, x in zip(("hfx", "ust", "pblh", "nca", "pratec", "raincv"),
                                                       (hfx, ust, pblh, nca, pratec, raincv))})
        state["w"] = _view(w, (ni, nk + 1, nj))
        out = {k: state[k] for k in ("rthcuten", "rqvcuten", "rqccuten", "rqrcuten", "rqicuten", "rqscuten",
                                     "w0avg", "nca", "pratec", "raincv")}
        _state["mskf"].step(state, dt=dt, cudt=cudt, out=out)   # results written into WRF's buffers
        return 0
"""


def build(out_dir: Path) -> Path:
    """Compile the plugin into out_dir; returns the path of libmskf_plugin.so."""
    ffi = cffi.FFI()
    ffi.embedding_api(C_API)
    ffi.set_source("libmskf_plugin", "")
    ffi.embedding_init_code(INIT_CODE)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(ffi.compile(tmpdir=str(out_dir), target="libmskf_plugin.so", verbose=False))


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")))
