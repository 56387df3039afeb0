"""Quantization to Loihi-2-style fixed point: integer primitives, folding, calibration, quantization-aware training."""
