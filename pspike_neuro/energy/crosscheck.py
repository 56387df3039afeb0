"""NeuroBench's own workload metrics on the float model, next to our counts (``pspike report --neurobench``).

NeuroBench (Yik et al., "The neurobench framework for benchmarking neuromorphic computing algorithms and
systems", Nature Communications 16, 2025; the ``neurobench`` package, pinned in the dev extras) measures a
PyTorch model through hooks: *activation sparsity* (zeros over all outputs of the activation modules,
``metrics/workload/activation_sparsity.py``), *synaptic operations* (``Effective_ACs`` for binary inputs and
``Effective_MACs`` for graded ones, counted on ``nn.Linear``/``Conv``/RNN layers as non-zero inputs times
non-zero weights, bias excluded; ``Dense`` counts every weight, ``metrics/utils/layers/macs.py``) and
*membrane updates* (steps where an snnTorch neuron's ``mem`` changed, ``metrics/workload/membrane_updates.py``).

The float model runs with the common random numbers of ``pspike verify``'s first seed (float64, sample ids
by position), so its spikes are the spikes our float counts were made from; every difference left is one
of convention, and :func:`neurobench_crosscheck` says which.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..numerics.rng import CounterNoise


class _CommonNoiseForward(nn.Module):
    """``model(x)`` with the counter-based noise of ``seed``: batch after batch, sample ``i`` of the run
    draws with id ``i`` (what ``pspike verify`` gives the float model)."""

    def __init__(self, model: nn.Module, seed: int, prob_bits: int, lengths):
        super().__init__()
        self.model, self.seed, self.prob_bits = model, seed, prob_bits
        self.lengths = None if lengths is None else torch.as_tensor(lengths)
        self.offset = 0

    def forward(self, x):
        ids = torch.arange(self.offset, self.offset + len(x))
        lengths = None if self.lengths is None else self.lengths[ids]
        self.offset += len(x)
        noise = CounterNoise(seed=self.seed, prob_bits=self.prob_bits, sample_ids=ids)
        return self.model(x, lengths, noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))


def activation_modules(model: nn.Module) -> tuple:
    """The modules whose outputs are a model's spikes: samplers (P-SpikeSSM), neuron layers (SiLIF family)."""
    from ..models.sampler import LIFSampler, SpikeSampler
    from ..models.silif import LAYERS

    return (SpikeSampler, LIFSampler) + tuple(LAYERS.values())


def run_neurobench(model: nn.Module, x: np.ndarray, labels: np.ndarray, lengths, seed: int, prob_bits: int,
                   batch_size: int = 64) -> dict:
    """NeuroBench's ActivationSparsity, SynapticOperations and MembraneUpdates of the float ``model``."""
    import neurobench
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import TorchModel

    net = _CommonNoiseForward(copy.deepcopy(model).double().eval(), seed, prob_bits, lengths)  # the caller's model stays as it is
    wrapped = TorchModel(net)
    for cls in activation_modules(model):
        wrapped.add_activation_module(cls)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt.double() if xt.is_floating_point() else xt
    data = torch.utils.data.TensorDataset(xt, torch.as_tensor(labels))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    bench = Benchmark(wrapped, loader, [], [], [[], [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    results = bench.run(quiet=True)
    del bench  # removes its hooks
    ops = results["SynapticOperations"]
    return {"version": neurobench.__version__, "activation_sparsity": float(results["ActivationSparsity"]),
            "effective_acs": float(ops["Effective_ACs"]), "effective_macs": float(ops["Effective_MACs"]),
            "dense_synops": float(ops["Dense"]), "membrane_updates": float(results["MembraneUpdates"])}


def our_activation_sparsity(spikes: list, valid: np.ndarray) -> float:
    """Zeros over all sampler (or neuron layer) outputs at valid steps: NeuroBench's definition, our spikes."""
    zeros = slots = 0
    for s in spikes:
        if s is None:
            continue
        v = np.asarray(s)[valid]
        zeros, slots = zeros + int(v.size - np.count_nonzero(v)), slots + int(v.size)
    return 1.0 - (slots - zeros) / slots if slots else 0.0


def neurobench_crosscheck(nb: dict, ours: dict) -> dict:
    """The table of the report: each NeuroBench metric next to our count of the same float spikes, and why
    they differ. ``ours``: ``activation_sparsity``, ``ops`` (full, per inference), ``synaptic_ops``,
    ``non_spiking_synaptic_ops``, ``pruned`` (neurons the netlist lacks), ``padded`` (padded steps exist)."""
    full, syn, dense = ours["ops"], ours["synaptic_ops"], ours["non_spiking_synaptic_ops"]
    pruned = (f" The netlist lacks {ours['pruned']} pruned neurons, whose spikes NeuroBench still counts."
              if ours.get("pruned") else "")
    rows = [
        {"metric": "activation sparsity", "neurobench": f"{nb['activation_sparsity']:.4f}",
         "ours": f"{ours['activation_sparsity']:.4f}",
         "why": "Same definition on the same spikes (every sampler's or neuron layer's output); they differ only "
                "where sequences are padded (NeuroBench counts padded steps as zeros)." + pruned},
        {"metric": "synaptic ACs (binary inputs)", "neurobench": f"{nb['effective_acs']:,.0f}",
         "ours": f"{syn['ac']:,.0f}",
         "why": "Both count arriving spikes times the non-zero weights they reach. NeuroBench sees the float "
                "weights (all non-zero); ours are the deployed synapses, where weights that round to zero on "
                "the 8-bit grid (and --density, --prune-silent) are gone." + pruned},
        {"metric": "synaptic MACs (graded inputs)", "neurobench": f"{nb['effective_macs']:,.0f}",
         "ours": f"{syn['graded_synops']:,.0f}",
         "why": "NeuroBench counts the encoder (host-side in ours) and the readout once per sample on the time "
                "average of the residual stream; on chip the readout synapse sums every step (steps x width x "
                "classes), and the encoder runs on the host."},
        {"metric": "dense synaptic operations", "neurobench": f"{nb['dense_synops']:,.0f}",
         "ours": f"{dense['ac'] + dense['graded_synops']:,.0f}",
         "why": "Every weight of every connection at every use: NeuroBench's includes the encoder and one readout "
                "per sample; ours is the non-spiking counterpart's synapses (mixers and readout every step)."},
        {"metric": "membrane updates", "neurobench": f"{nb['membrane_updates']:,.0f}",
         "ours": f"{full['neuron_updates']:,.0f}",
         "why": "NeuroBench counts only snnTorch neurons that expose a membrane (mem); our samplers, SSM modes and "
                "SiLIF states have none, so it reports 0. Ours counts every compartment update (each SSM mode, "
                "each sampler, each ClampFuse and readout neuron, every step)."},
        {"metric": "state-update MACs (full accounting only)", "neurobench": "not counted",
         "ours": f"{full['mac']:,.0f}",
         "why": "The SSM modes' decay and readout and the samplers' scales are not connection layers, so no "
                "synaptic-operation count includes them; they dominate the full accounting."},
    ]
    return {"neurobench_version": nb["version"], "neurobench": nb, "rows": rows,
            "note": f"NeuroBench {nb['version']} on the float model with verify's first seed (common random numbers), "
                    "per inference; ours from the same float spikes, counted by the deployed netlist's node types."}
