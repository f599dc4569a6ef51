"""Coupling the MSKF surrogate to WRF: the NumPy tile hook and the TorchScript export for FTorch."""

from sciml.coupling.hook import MSKFSurrogate

__all__ = ["MSKFSurrogate"]
