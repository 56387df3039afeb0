"""Checkpoint I/O, the one export path (fold, calibrate, quantize), the netlist's HDF5 file, the Loihi
core mapping, and other tools' files in and out: ``pspike import`` (NIR) and the NIR export."""
