"""Map netlist populations onto Loihi 2 cores with a stated resource model.

Every limit carries its source (see docs/netlist-format.md, "Core mapping"):

* neurons (compartments) per core: 8,192 on Loihi 2 (1,048,576 neurons per chip / 128 cores;
  WikiChip, "Loihi 2", https://en.wikichip.org/w/index.php?title=intel/loihi_2&oldid=102417);
* neuromorphic cores per chip: 128 (Davies et al., IEEE Micro 2018, p. 86, for Loihi 1; the same
  count for Loihi 2 per WikiChip);
* synaptic memory per core: 128 KiB, the Loihi 1 figure (Davies et al. 2018, p. 92: "128 KB of
  synaptic state"). Intel has not published a per-core Loihi 2 figure (its memory is partitioned
  flexibly), so this conservative value is an assumption, not a Loihi 2 fact.

Demands: an SSM neuron with M complex modes takes one compartment per mode (two 24-bit state
words each, as ``lava.proc.rf`` holds a resonator) plus one for its samplers and readout; a
ClampFuse neuron, a readout integrator and a SiLIF or C-SiLIF neuron (two state words, like one
``lava.proc.rf`` resonator) take one compartment each. A synapse takes its weight
bits plus ``ceil(log2(fan_in))`` index bits (sparse) or only its weight bits (dense). Synapses are
stored on the core of their destination neuron. A population is split over as many cores as its
larger demand needs; populations never share a core (a conservative, simple packing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NEURONS_PER_CORE = 8192
CORES_PER_CHIP = 128
SYNAPSE_BYTES_PER_CORE = 128 * 1024

LIMITS = {
    "neurons_per_core": (NEURONS_PER_CORE, "WikiChip Loihi 2: 1,048,576 neurons / 128 cores"),
    "cores_per_chip": (CORES_PER_CHIP, "Davies et al., IEEE Micro 2018, p. 86; WikiChip Loihi 2"),
    "synapse_bytes_per_core": (SYNAPSE_BYTES_PER_CORE,
                               "Davies et al., IEEE Micro 2018, p. 92 (Loihi 1 figure; assumed for Loihi 2)"),
}


@dataclass
class Demand:
    name: str
    compartments: int
    synapse_bytes: int


@dataclass
class Placement:
    name: str
    compartments: int
    synapse_bytes: int
    cores: int
    limited_by: str


def synapse_bytes(nnz: int, weight_bits: int, fan_in: int, sparse: bool) -> int:
    index_bits = max(1, math.ceil(math.log2(max(2, fan_in)))) if sparse else 0
    return math.ceil(nnz * (weight_bits + index_bits) / 8)


def place(demands: list[Demand]) -> tuple[list[Placement], int, int]:
    """Cores per population, total cores and chips."""
    placements = []
    for d in demands:
        by_neurons = math.ceil(d.compartments / NEURONS_PER_CORE)
        by_synapses = math.ceil(d.synapse_bytes / SYNAPSE_BYTES_PER_CORE)
        cores = max(1, by_neurons, by_synapses)
        placements.append(Placement(d.name, d.compartments, d.synapse_bytes, cores,
                                    "synaptic memory" if by_synapses > by_neurons else "neurons"))
    total = sum(p.cores for p in placements)
    return placements, total, math.ceil(total / CORES_PER_CHIP)
