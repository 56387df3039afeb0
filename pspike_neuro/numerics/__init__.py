"""The integer contract's primitives (docs/numerics.md), the counter-based random generator
(docs/rng.md) and the compiled kernels: the bottom layer, imported by everything above it
(node types, calibration, both simulators), importing nothing of the package."""
