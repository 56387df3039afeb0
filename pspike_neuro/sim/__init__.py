"""Simulation backends over the graph executor: the bit-exact reference simulator, the Lava process
graph (one process per node: Lava's own synapses, a generic process running each node type's step),
and ``pspike simulate``'s inputs, runs and activity files."""
