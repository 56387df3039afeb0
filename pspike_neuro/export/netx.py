"""Write the part of a netlist that lava-dl netx's HDF5 schema can express: the readout.

netx (lava-dl 0.6, ``lava.lib.dl.netx.hdf5.Network``) knows dense layers of CUBA neurons; of the
deployed P-SpikeSSM only the readout is such a layer. It becomes::

    /layer/0  input  shape (H,)
    /layer/1  dense  weight (classes, H) = the readout's Lava weights, bias = per-step bias,
              neuron CUBA with iDecay 4096 (the current is replaced every step), vDecay 0 (no leak),
              vThMant 131071 (the largest 17-bit threshold: an integrator, not a spiking layer)

Lava's CUBA neuron computes ``v <- clip(v + (a << 6) + (bias << 6), 24 bits)`` with ``a`` the dense
layer's output, and netx gives the dense layer no exponent beyond what it needs to fill 8 weight
bits. Our readout instead applies ``weight_exp`` (typically a right shift of 10 to 20 bits) to the
sum. The graded input must therefore be pre-scaled on the host: feed ``x >> input_shift`` with
``input_shift = 6 - weight_exp`` (stored in the file under ``/pspike`` as an attribute, which netx
ignores). This costs input precision, so the netx readout is an interchange format for tools that
read netx, not a bit-exact twin of the deployed readout; ``netx_readout_reference`` gives its exact
arithmetic in numpy.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..fileio import atomic_path
from ..graph import Netlist

CUBA_INTEGRATOR = {"iDecay": 4096, "vDecay": 0, "vThMant": 2**17 - 1, "refDelay": 1, "gradedSpike": False}
BIAS_MANT_MAX = 4095  # 13-bit signed mantissa of Lava's LIF bias


def readout_netx_params(netlist: Netlist) -> dict:
    syn, integ = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    input_shift = max(0, 6 - syn.weight_exp)
    bias = np.clip(np.rint(integ.bias / 64.0), -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int64)
    return {"weight": syn.weights.astype(np.int64), "bias": bias, "input_shift": int(input_shift)}


def write_readout_netx(netlist: Netlist, path) -> None:
    params = readout_netx_params(netlist)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            g = layers.create_group("0")
            g.create_dataset("type", (1,), "S10", [b"input"])
            g.create_dataset("shape", data=np.array([params["weight"].shape[1]]))
            g = layers.create_group("1")
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g.create_dataset("shape", data=np.array([params["weight"].shape[0]]))
            g.create_dataset("weight", data=params["weight"])
            g.create_dataset("bias", data=params["bias"])
            neuron = g.create_group("neuron")
            neuron.create_dataset("type", data=np.bytes_("CUBA"))
            for key, value in CUBA_INTEGRATOR.items():
                neuron.create_dataset(key, data=value)
            info = f.create_group("pspike")
            info.attrs["input_shift"] = params["input_shift"]
            info.attrs["source"] = "readout of a pspike-neuro netlist"
            info.attrs["source_sha256"] = netlist.meta["source_sha256"]


def netx_readout_reference(weight: np.ndarray, bias: np.ndarray, x_shifted: np.ndarray, weight_exp: int) -> np.ndarray:
    """Lava's CUBA integrator fed by a Dense layer, one sample: final ``v`` (classes,).

    ``weight_exp`` is the exponent netx chose for the dense layer (``optimize_weight_bits``) and
    ``weight`` the integer weights it passed to Lava. One Lava step per input row; the dense layer
    adds one step of latency, so row ``t`` reaches ``v`` at step ``t + 1`` (feed a trailing zero
    row to collect the last one).
    """
    limit = 2**23 - 1
    v = np.zeros(weight.shape[0], np.int64)
    for t in range(x_shifted.shape[0]):
        a = np.zeros(weight.shape[0], np.int64) if t == 0 else weight @ x_shifted[t - 1]
        a = np.left_shift(a, weight_exp) if weight_exp > 0 else np.right_shift(a, -weight_exp)
        v = np.clip(v + (a << 6) + (bias << 6), -limit, limit)
    return v
