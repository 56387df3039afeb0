"""Checkpoint I/O, the netlist IR and its HDF5 file, and the Loihi core mapping."""
