"""Editing a netlist file the way a deliberate forger would: change it with h5py, then seal it again.

A plain edit is refused by the integrity header before HDF5 parses anything; sealing it again makes
the file reach the reader's own structural checks, which these tests are about.
"""

import contextlib

import h5py

from pspike_neuro.export.hdf5 import seal


@contextlib.contextmanager
def crafted(path):
    """``with crafted(path) as f:`` edits the HDF5 file ``f`` and re-seals it afterwards."""
    with h5py.File(path, "r+") as f:
        yield f
    seal(path)
