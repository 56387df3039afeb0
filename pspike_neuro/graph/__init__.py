"""The netlist as a graph of registered node types, and the executor that runs any such graph
(integer or float). Below ``quant``, ``export`` and ``sim``: calibration, export's saturation check
and the reference simulator all run graphs through it."""

from .execute import RunResult, run, valid_mask
from .netlist import FORMAT, FORMAT_VERSION, META_KEYS, Edge, Netlist, NetlistError, Schedule, lava_latency

__all__ = ["FORMAT", "FORMAT_VERSION", "META_KEYS", "Edge", "Netlist", "NetlistError", "RunResult", "Schedule",
           "lava_latency", "run", "valid_mask"]
