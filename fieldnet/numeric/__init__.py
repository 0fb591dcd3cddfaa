"""Numeric side: quadrature, the reference numpy backend, and the dataset driver."""

from fieldnet.numeric.kernels import Backend, KernelResult, kernels, validate_inputs

__all__ = ["Backend", "KernelResult", "kernels", "validate_inputs"]
