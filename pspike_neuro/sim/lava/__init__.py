"""Lava processes and process models of the deployed network. Lava executes every module in this
folder when it compiles a graph, so it holds only process and model definitions; the graph
builder is ``pspike_neuro.sim.lava_backend``."""
