"""Static resource usage of the fused TDN kernels, without a GPU: Triton compiles a kernel ahead of time for a CUDA
architecture (source -> PTX), Triton's bundled ptxas assembles it with ``-v``, and its report gives registers per
thread, spilled bytes and the shared memory Triton allocates. Register spills are the usual reason a kernel of this
kind runs several times slower than it should, so the shipped launch configurations must not spill (tested).

    from sciml.tdn.triton_resources import kernel_resources
    kernel_resources("edge_matrix_fwd_kernel", {"DP": 64, "BC": 16, "PREC": "ieee"}, num_warps=4)
    # {'registers': 93, 'spill_bytes': 0, 'shared_bytes': 28672, 'warps_per_sm': 20}
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

#: PTX element types of the kernels' pointer arguments by torch dtype name
POINTER_TYPES = {"float32": "*fp32", "float64": "*fp64"}


def ptxas_available(arch: int = 90) -> bool:
    """True when Triton's NVIDIA backend and its ptxas for ``arch`` (e.g. 90 = H100/H200) are installed."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return os.access(get_ptxas(arch).path, os.X_OK)
    except Exception:  # no triton, no NVIDIA backend, or no bundled ptxas
        return False


def kernel_resources(name: str, constexprs: dict, num_warps: int, dtype: str = "float32",
                     arch: int = 90) -> dict[str, int]:
    """Compile kernel ``name`` of ``sciml.tdn._triton_kernels`` for compute capability ``arch`` with the given
    constexpr values (e.g. DP, BC, PREC) and pointer dtype; returns registers per thread, spill store bytes and the
    shared memory per program (bytes). Needs triton with its NVIDIA backend, not a GPU."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
    from triton.compiler import ASTSource

    from sciml.tdn import _triton_kernels

    kernel = getattr(_triton_kernels, name)
    signature = {arg: "constexpr" if arg in constexprs else POINTER_TYPES[dtype] if arg.endswith("_ptr") else "i32"
                 for arg in kernel.arg_names}
    compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "enable_fp_fusion": True})  # Triton's launch default
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as fh:
            fh.write(compiled.asm["ptx"])
        # the options Triton itself passes (-v prints the resource report)
        cmd = [get_ptxas(arch).path, "-v", "--regAllocOptLevel=2", f"--gpu-name={sm_arch_from_capability(arch)}",
               src, "-o", os.path.join(tmp, "kernel.cubin")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    if registers is None or spills is None:
        raise RuntimeError(f"unexpected ptxas report for {name}:\n{log}")
    res = {"registers": int(registers.group(1)), "spill_bytes": int(spills.group(1)),
           "shared_bytes": int(compiled.metadata.shared)}
    res["warps_per_sm"] = num_warps * programs_per_sm(res["registers"], res["shared_bytes"], num_warps)
    return res


def stage_resources(stage: str, dp: int, bc: int, num_warps: int, precision: str = "ieee", dtype: str = "float32",
                    arch: int = 90) -> dict[str, int]:
    """:func:`kernel_resources` of SH-first stage ``stage`` (see ``triton_cp.EDGE_MATRIX_STAGES``) at padded size dp
    with channel chunk bc."""
    from sciml.tdn.triton_cp import stage_kernel

    name, extra = stage_kernel(stage)
    return kernel_resources(name, {"DP": dp, "BC": bc, "PREC": precision, **extra}, num_warps, dtype, arch)


def rank_resources(name: str, d: int, c: int, precision: str = "ieee", dtype: str = "float32",
                   arch: int = 90) -> dict[str, int]:
    """:func:`kernel_resources` of rank kernel ``name`` (cp_fwd_kernel / cp_bwd_kernel) with the launch configuration
    ``triton_cp.rank_config`` gives for d components and c channels."""
    from sciml.tdn.triton_cp import rank_config

    meta = rank_config(d, c)
    num_warps = meta.pop("num_warps")
    return kernel_resources(name, {**meta, "PREC": precision}, num_warps, dtype, arch)


def programs_per_sm(registers: int, shared_bytes: int, num_warps: int) -> int:
    """Resident programs (thread blocks) per Hopper SM: 64K registers allocated per warp in units of 256, 228 KiB
    shared memory (1 KiB reserved per block), at most 64 warps and 32 blocks."""
    regs_per_warp = -(-registers * 32 // 256) * 256
    by_regs = 65536 // (regs_per_warp * num_warps)
    by_shared = 228 * 1024 // (shared_bytes + 1024)
    return min(by_regs, by_shared, 32, 64 // num_warps)
