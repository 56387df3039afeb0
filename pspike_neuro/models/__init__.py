"""Float models in PyTorch: the SSM kernel, spike samplers, P-SpikeSSM blocks and networks."""

from .config import PRESETS, ModelConfig, preset
from .pspike import PSpikeBlock, PSpikeSSM
from .sampler import LIFSampler, SpikeSampler, bernoulli_spike, boxcar_spike
from .ssm import DiagonalSSM

__all__ = [
    "PRESETS", "ModelConfig", "preset", "PSpikeBlock", "PSpikeSSM", "LIFSampler", "SpikeSampler",
    "bernoulli_spike", "boxcar_spike", "DiagonalSSM",
]
