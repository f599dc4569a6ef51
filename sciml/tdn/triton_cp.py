"""Fused Triton kernels for the shared-weight CP product (placeholder until the kernel lands)."""

from __future__ import annotations


def available() -> bool:
    """True when the fused kernel can be used (Triton importable)."""
    return False
