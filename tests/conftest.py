"""Shared fixtures: small deterministic models with realistic BatchNorm statistics and affines."""

# Lava sets the multiprocessing start method to 'fork' when its message infrastructure is imported
# and fails with "context has already been set" if anything chose a context first; import it before
# any test can.
import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
import pytest
import torch

from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.models import ModelConfig, PSpikeSSM


def trained_like(cfg: ModelConfig, seed: int = 0) -> PSpikeSSM:
    """A model with non-trivial BatchNorm statistics and sampler affines, as after training."""
    torch.manual_seed(seed)
    model = PSpikeSSM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("a_in", "a_out")):
                p.uniform_(-1.5, 1.5)
            elif name.endswith(("b_in", "b_out")):
                p.uniform_(-0.2, 0.6)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory):
    """A 2-block, H=8, N=4 sdigits-shaped model saved as a checkpoint; returns the loaded Checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, trained_like(ModelConfig(d_model=8, d_state=4, n_layers=2)), task="sdigits")
    return load_checkpoint(path)


@pytest.fixture(scope="session")
def trained_sdigits(tmp_path_factory):
    """A small P-SpikeSSM (2 x H=32, N=8) trained for 30 epochs on sdigits (about 90 %), and its netlist.

    Smaller or shorter-trained models (2 x H=16: 60-76 %) lose 2-2.5 points when deployed: their
    near-tie logits flip with the few spikes that quantization moves, so they cannot pass verify."""
    from pspike_neuro.data import load_task
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.hdf5 import write_netlist
    from pspike_neuro.quant.quantize import QuantConfig
    from pspike_neuro.training import TrainConfig, train

    out = tmp_path_factory.mktemp("trained")
    task = load_task("sdigits")
    cfg = ModelConfig(d_model=32, d_state=8, n_layers=2)
    train(task, cfg, TrainConfig(epochs=30, eval_seeds=1), out, progress=False, log=lambda msg: None)
    ckpt = load_checkpoint(out / "model.pt")
    netlist, _ = build_netlist(ckpt, QuantConfig(calib_samples=64))
    write_netlist(netlist, out / "model.net")
    return ckpt, out / "model.net"
