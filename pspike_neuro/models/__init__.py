"""Float models in PyTorch: the SSM kernel, spike samplers, P-SpikeSSM blocks and networks, SiLIF networks."""

from .config import PRESETS, ModelConfig, preset
from .graph import GraphConfig, GraphModel
from .pspike import PSpikeBlock, PSpikeSSM
from .sampler import LIFSampler, SpikeSampler, bernoulli_spike, boxcar_spike
from .silif import SNN, SNN_KINDS, SNNConfig
from .ssm import DiagonalSSM

__all__ = [
    "GraphConfig", "GraphModel", "PRESETS", "ModelConfig", "preset", "PSpikeBlock", "PSpikeSSM", "LIFSampler", "SpikeSampler",
    "bernoulli_spike", "boxcar_spike", "DiagonalSSM", "SNN", "SNN_KINDS", "SNNConfig",
]
