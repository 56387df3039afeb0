"""Simulation backends: the counter-based RNG, the bit-exact reference simulator and the Lava process graph."""
