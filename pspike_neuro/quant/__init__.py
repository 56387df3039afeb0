"""Quantization to Loihi-2-style fixed point: folding each model family into a float graph,
calibration on the float graph, node-by-node quantization, quantization-aware training."""
