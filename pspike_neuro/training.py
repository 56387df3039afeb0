"""Training and stochastic evaluation of float models.

Optimizer as the authors use it: AdamW, with the SSM kernel parameters (``log_dt``, ``A``, ``B``)
in their own group at lr 1e-3 and no weight decay; a cosine schedule with linear warm-up over all
steps. Inference stays stochastic: accuracy is measured once per inference seed and reported as
the mean (and spread) over seeds.

Every random number of training and evaluation is addressed, not drawn from a stream: the
samplers' uniforms by (seed, site, neuron, step, sample index) (:class:`SampleNoise`), the data
order by (seed, epoch). So a sample's spikes do not depend on its batch or on the rank that holds
it, and under torchrun K ranks with global batch B compute what one process computes (up to float
rounding; ``docs/scaling.md``). Training writes ``resume.pt`` at every epoch's end (and every
``checkpoint_every`` steps); ``resume=DIR`` continues a killed run to the model an uninterrupted
run ends with, tensor for tensor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import __version__, distributed
from .data.dataset import SeqDataset, TaskData
from .errors import UserError
from .export.checkpoint import checkpoint_payload, state_digest
from .fileio import atomic_path, atomic_paths
from .models import SNN, ModelConfig, PSpikeSSM, SNNConfig
from .numerics.rng import CounterNoise, hash_u32

#: the training state a run keeps beside its outputs while it trains (removed once model.pt is written)
RESUME_FILE = "resume.pt"
STATE_FORMAT = "pspike-neuro-training-state"
STATE_FORMAT_VERSION = 1
#: test hook: every rank ends with os._exit(9) right after this many resume.pt writes (a deterministic "kill")
EXIT_AFTER_CHECKPOINTS_ENV = "PSPIKE_TEST_EXIT_AFTER_CHECKPOINTS"
#: keys of the counter-based generator reserved for training (sampler sites are 4 * layer + k, far below)
NOISE_STREAM, RANK_STREAM = 0xFFFFFFFE, 0xFFFFFFFD


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 0.01
    ssm_lr: float = 1e-3
    warmup_fraction: float = 0.05
    seed: int = 0
    device: str = "cpu"
    eval_seeds: int = 5
    # spike-rate regularization (models/rates.py): lambda, per-layer targets, form, warm-up of lambda
    rate_penalty: float = 0.0
    rate_target: tuple = (0.0,)
    rate_penalty_form: str = "mean"
    rate_warmup_fraction: float = 0.0
    rate_sites: str = "all"

    def __post_init__(self):
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and self.ssm_lr > 0):
            raise UserError("learning rates must be positive")
        if self.eval_seeds < 1:
            raise UserError(f"--eval-seeds must be at least 1, got {self.eval_seeds}")
        from .models.rates import check_rate_settings

        self.rate_target = tuple(self.rate_target)
        check_rate_settings(self.rate_penalty, self.rate_target, self.rate_penalty_form, sites=self.rate_sites)
        if not 0.0 <= self.rate_warmup_fraction <= 1.0:
            raise UserError(f"--rate-warmup must be in [0, 1], got {self.rate_warmup_fraction}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SeededNoise:
    """A noise source drawing ``torch.rand`` from one seeded generator (reproducible inference)."""

    def __init__(self, seed: int, device: str | torch.device = "cpu"):
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, site, shape, device, dtype):
        return torch.rand(shape, generator=self.generator, device=device, dtype=dtype)


class SampleNoise:
    """Uniforms in [0, 1) addressed by sample: ``u[b, t, h] = uniform_float(seed, site, h, t, 24,
    sample=sample_ids[b])``, the counter-based generator of ``docs/rng.md`` at 24 bits. A sample's
    noise depends neither on its batch, nor on its place in it, nor on the rank that holds it. The
    CPU draws with the compiled kernel (about as fast as ``torch.rand``), other devices with the
    torch hash: the same numbers."""

    PROB_BITS = 24

    def __init__(self, seed: int, sample_ids):
        self.seed = int(seed)
        self.sample_ids = torch.as_tensor(sample_ids, dtype=torch.int64).cpu()

    def __call__(self, site, shape, device, dtype):
        from .numerics import kernels

        device = torch.device(device)
        if device.type == "cpu" and dtype in (torch.float32, torch.float64) and kernels.AVAILABLE:
            b, length, h = shape
            if b != len(self.sample_ids):
                raise ValueError(f"sample_ids has {len(self.sample_ids)} entries but the batch size is {b}")
            r = kernels.random_block(self.seed, site, h, length, self.PROB_BITS, self.sample_ids.numpy())
            return torch.from_numpy(r).to(dtype).mul_(2.0 ** -self.PROB_BITS)
        return CounterNoise(self.seed, self.PROB_BITS, self.sample_ids)(site, shape, device, dtype)


def epoch_noise_seed(seed: int, epoch: int) -> int:
    """The key of the samplers' noise in one training epoch (a stream of its own per epoch)."""
    return int(hash_u32(seed, NOISE_STREAM, epoch, 0, 0))


class SyncedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d with the statistics of the global batch while training under torchrun: every
    rank's per-channel sum and sum of squares (float64) are all-reduced, differentiably, so the
    gradient flows through the other ranks' samples as in one process. Evaluation uses the running
    statistics, as BatchNorm1d does. torch's own SyncBatchNorm refuses CPU tensors (torch 2.3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c, dims = x.shape[1], [0, *range(2, x.dim())]
        xd = x.double()
        count = torch.full((1,), x.numel() / c, dtype=torch.float64, device=x.device)
        moments = all_reduce(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
        n = moments[-1]
        mean = moments[:c] / n
        var = (moments[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(mean.to(self.running_mean.dtype), alpha=f)
                self.running_var.mul_(1 - f).add_((var * n / (n - 1)).to(self.running_var.dtype), alpha=f)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def _swap_batch_norm(model: nn.Module, to: type) -> None:
    """Change the class of every BatchNorm1d in place (parameters, buffers and the optimizer's
    references stay the same objects)."""
    for module in model.modules():
        if type(module) in (nn.BatchNorm1d, SyncedBatchNorm):
            module.__class__ = to


def resolve_device(name: str) -> torch.device:
    """The device ``--device`` names; under torchrun, ``cuda`` is the GPU of the rank's local rank."""
    if name == "auto":
        return distributed.device_for(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda[:N] or auto, got {name!r}")
    return distributed.device_for(torch.device(name))


def build_optimizer(model: PSpikeSSM, cfg: TrainConfig) -> torch.optim.Optimizer:
    ssm_ids = {id(p) for p in model.ssm_parameters()}
    ssm = [p for p in model.parameters() if id(p) in ssm_ids]
    rest = [p for p in model.parameters() if id(p) not in ssm_ids]
    return torch.optim.AdamW([
        {"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": ssm, "lr": cfg.ssm_lr, "weight_decay": 0.0},
    ])


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _lengths_arg(lengths: torch.Tensor, seq_len: int, device) -> Optional[torch.Tensor]:
    return None if bool((lengths == seq_len).all()) else lengths.to(device)


@torch.no_grad()
def predict(model: PSpikeSSM, data: SeqDataset, seed: int, batch_size: int = 256,
            device: str | torch.device = "cpu", first_id: int = 0) -> torch.Tensor:
    """Class predictions of one stochastic inference pass: sample ``i`` of ``data`` draws its noise
    with id ``first_id + i`` and inference seed ``seed`` (:class:`SampleNoise`)."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(data), batch_size):
        x, _, lengths = data[start:start + batch_size]
        noise = SampleNoise(seed, torch.arange(first_id + start, first_id + start + len(x)))
        logits = model(x.to(device), _lengths_arg(lengths, x.shape[1], device), noise=noise)
        out.append(logits.argmax(-1).cpu())
    return torch.cat(out)


def evaluate(model: PSpikeSSM, data: SeqDataset, seeds, batch_size: int = 256,
             device: str | torch.device = "cpu") -> dict:
    """Accuracy of stochastic inference for each seed, and their mean and standard deviation.

    Under torchrun each rank predicts its own whole batches (the batches of one process, so the
    same float arithmetic) and every rank returns the accuracies of the whole set."""
    part = distributed.shard(len(data), batch_size)
    mine = data.select(slice(part.start, part.stop))
    accs = []
    for s in seeds:
        correct = int((predict(model, mine, s, batch_size, device, part.start) == mine.y).sum()) if len(part) else 0
        accs.append(sum(distributed.all_gather(correct)) / len(data))
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"accuracy": mean, "accuracy_std": std, "per_seed": accs, "seeds": list(seeds)}


def build_model(cfg: ModelConfig | SNNConfig) -> PSpikeSSM | SNN:
    """The network a config describes: a P-SpikeSSM, or a SiLIF / C-SiLIF network."""
    return SNN(cfg) if isinstance(cfg, SNNConfig) else PSpikeSSM(cfg)


def batch_loss(logits: torch.Tensor, y: torch.Tensor, share: float) -> torch.Tensor:
    """This rank's part of the global batch's mean loss: the sum over its samples times ``share`` =
    ranks / global batch size. DistributedDataParallel averages the ranks' gradients, so their mean
    is the gradient of the global batch's mean, whatever each rank holds. A further term that is a
    mean over samples (a rate penalty) is added the same way: a sum over this rank's samples times
    ``share``."""
    return F.cross_entropy(logits, y, reduction="sum") * share


@dataclass
class Progress:
    """Where a run stands: what resume.pt records besides the model, optimizer and schedule."""

    epoch: int = 0              # the epoch under way (epochs before it are complete)
    step_in_epoch: int = 0      # its steps already taken
    global_step: int = 0
    elapsed_s: float = 0.0      # training time before this process started
    history: list = field(default_factory=list)
    sums: list = field(default_factory=lambda: [0.0, 0, 0])  # this rank's loss sum, correct, seen in the epoch


def run_identity(task: TaskData, model: nn.Module, cfg: TrainConfig, task_options: dict | None,
                 qat_weight_bits: int | None, init: nn.Module | None, world: int) -> dict:
    """What a resumed run must share with the run that wrote resume.pt to end with the same model."""
    train = task.train
    digest = hashlib.sha256()
    for t in (train.x, train.y, train.lengths):
        digest.update(t.contiguous().numpy().tobytes())
    identity = {"task": task.name, "task_options": dict(task_options or {}),
                "train_data_sha256": digest.hexdigest(), "model_type": getattr(model, "model_type", "pspike"),
                "model_config": model.cfg.to_dict(), "train_config": cfg.to_dict(), "qat_weight_bits": qat_weight_bits,
                "init_state_sha256": None if init is None else state_digest(init.state_dict()), "ranks": world}
    return json.loads(json.dumps(identity, default=repr))


def _rng_states() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def _load_state_file(path: Path):
    try:
        return "ok", torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file raises almost anything
        return "damaged", (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _first_difference(here, there, name: str = "") -> str | None:
    if isinstance(here, dict) and isinstance(there, dict):
        for key in sorted(set(here) | set(there)):
            found = _first_difference(here.get(key), there.get(key), f"{name}.{key}" if name else key)
            if found:
                return found
        return None
    return None if here == there else f"{name} is {there!r} there and {here!r} here"


def load_training_state(folder: str | Path, identity: dict) -> dict:
    """The validated contents of ``folder/resume.pt``, refused (one line) when the run there has
    another configuration or was written by another version; read before anything is written."""
    from .isolate import run_isolated

    folder = Path(folder)
    path = folder / RESUME_FILE
    if not path.is_file():
        finished = (folder / "model.pt").is_file() and (folder / "metrics.json").is_file()
        raise UserError(f"--resume {folder}: no {RESUME_FILE} there" + (
            " (the run there has finished: model.pt and metrics.json are written)" if finished else
            " (a run writes it at the end of each epoch; this folder holds none)"))
    status, payload = run_isolated(_load_state_file, path, what=f"training state {path}",
                                   crash_hint="the file is damaged")
    if status != "ok" or not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT or \
            not isinstance(payload.get("identity"), dict):
        why = payload if status != "ok" else "not a pspike-neuro training state"
        raise UserError(f"--resume {folder}: {RESUME_FILE} is unreadable ({why})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > STATE_FORMAT_VERSION:
        raise UserError(f"--resume {folder}: {RESUME_FILE} has format version {version!r}; this pspike-neuro reads "
                        f"{STATE_FORMAT_VERSION}")
    if payload.get("package_version") != __version__:
        raise UserError(f"--resume {folder}: the run there was written by pspike-neuro {payload.get('package_version')}, "
                        f"this is {__version__}; finish it with that version or start afresh (nothing was written)")
    difference = _first_difference(identity, payload.get("identity"))
    if difference:
        raise UserError(f"--resume {folder}: the run there has another configuration: {difference} (resume it with "
                        "the command line that started it; nothing was written)")
    missing = _state_problem(payload, distributed.ranks().world)
    if missing:
        raise UserError(f"--resume {folder}: {RESUME_FILE} is incomplete: {missing} (nothing was written)")
    return payload


#: what a training state holds besides its header (``_save_training_state``)
STATE_PARTS = {"model": dict, "optimizer": dict, "scheduler": dict, "progress": dict, "per_rank": list}
PROGRESS_FIELDS = ("epoch", "step_in_epoch", "global_step", "elapsed_s", "history")


def _state_problem(payload: dict, world: int) -> str:
    """What a training state lacks for ``_restore`` (empty if nothing): a part, a progress field, the
    random states and sums of a rank."""
    for name, kind in STATE_PARTS.items():
        if not isinstance(payload.get(name), kind):
            return f"no {name} {'list' if kind is list else 'mapping'}"
    absent = [k for k in PROGRESS_FIELDS if k not in payload["progress"]]
    if absent:
        return f"progress lacks {', '.join(absent)}"
    ranks = payload["per_rank"]
    if len(ranks) != world or not all(isinstance(r, dict) and "rng" in r and "sums" in r for r in ranks):
        return f"per_rank holds {len(ranks)} rank states, not {world} with rng and sums"
    return ""


def _save_training_state(path: Path, identity: dict, model: nn.Module, optimizer, scheduler, progress: Progress,
                         elapsed_s: float) -> None:
    """resume.pt, written by rank 0 with every rank's random states and partial sums."""
    per_rank = distributed.gather({"rng": _rng_states(), "sums": list(progress.sums)})
    if per_rank is None:
        return
    payload = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "package_version": __version__,
               "identity": identity, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
               "progress": {"epoch": progress.epoch, "step_in_epoch": progress.step_in_epoch,
                            "global_step": progress.global_step, "elapsed_s": elapsed_s,
                            "history": progress.history},
               "per_rank": per_rank}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _restore(state: dict, model: nn.Module, optimizer, scheduler) -> Progress:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    mine = state["per_rank"][distributed.ranks().rank]
    _set_rng_states(mine["rng"])
    return Progress(**state["progress"], sums=list(mine["sums"]))


class _CheckpointHook:
    """The test hook of ``EXIT_AFTER_CHECKPOINTS_ENV``: a run that ends as if killed, at a known point."""

    def __init__(self):
        self.left = int(os.environ.get(EXIT_AFTER_CHECKPOINTS_ENV, "0") or 0)

    def written(self) -> None:
        if self.left > 0:
            self.left -= 1
            if self.left == 0:
                distributed.barrier()
                os._exit(9)


def replicate(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training steps call: ``model`` itself in one process; under torchrun a
    DistributedDataParallel replica whose BatchNorms use the global batch's statistics."""
    if distributed.ranks().world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    _swap_batch_norm(model, SyncedBatchNorm)
    # buffers are not broadcast: the synced statistics keep the running averages equal on every rank
    replica = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    replica.register_comm_hook(None, _mean_in_rank_order)
    return replica


def _mean_in_rank_order(_, bucket):
    """DDP's gradient reduction as the ranks' gradients summed in rank order, element by element, then
    divided by the number of ranks. An all-reduce sums in an order that depends on where a gradient
    lies in its bucket, and DDP rebuilds its buckets after the first step, so a resumed run (whose
    first step has the first-step buckets) would round differently from the run it continues."""
    import torch.distributed as dist

    buffer = bucket.buffer()
    parts = [torch.empty_like(buffer) for _ in range(dist.get_world_size())]
    work = dist.all_gather(parts, buffer, async_op=True)

    def mean(_):
        total = parts[0].clone()
        for part in parts[1:]:
            total += part
        return total.div_(len(parts))

    return work.get_future().then(mean)


class _RateLog:
    """The rate penalty of ``cfg`` (models/rates.py) on ``model``'s samplers or neuron layers, its value
    and each site's mean probability per epoch (the epoch's steps since this process started)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, total_steps: int):
        from .models.rates import RatePenalty, RateProbe, check_rate_settings

        supported = isinstance(model, (PSpikeSSM, SNN))
        if cfg.rate_penalty > 0 and not supported:
            raise UserError(f"--rate-penalty: a {type(model).__name__} model has no samplers or neuron layers to regularize")
        n_layers = model.cfg.n_layers if supported else None
        check_rate_settings(cfg.rate_penalty, cfg.rate_target, cfg.rate_penalty_form, n_layers, cfg.rate_sites)
        self.settings = RatePenalty(cfg.rate_penalty, tuple(cfg.rate_target), cfg.rate_penalty_form, cfg.rate_sites)
        self.ramp_steps = cfg.rate_warmup_fraction * total_steps
        self.probe = RateProbe(model) if supported else None
        self.sums: dict = {}

    def penalty(self, lengths: torch.Tensor, length: int, step: int, share: float):
        """This rank's part of the penalty (``lambda_t * share * sum_b R_b``; 0 without a penalty) for the
        forward pass just made; ``lambda`` ramps up linearly over the warm-up steps."""
        from .models.pspike import time_mask
        from .models.rates import penalty_sum, site_means

        if self.probe is None:
            return 0.0
        mask = time_mask(None if bool((lengths == length).all()) else lengths, length, lengths.device)
        sites = self.probe.per_sample(None if mask is None else mask[..., 0])
        self.probe.clear()
        ramp = min(1.0, (step + 1) / self.ramp_steps) if self.ramp_steps else 1.0
        weight = self.settings.weight * ramp
        term = penalty_sum(self.settings, sites) if weight > 0 else None
        for key, value in {**site_means(sites), "penalty": float(term) if term is not None else 0.0,
                           "samples": float(len(lengths))}.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        return 0.0 if term is None else weight * share * term

    def epoch_end(self) -> dict:
        if self.probe is None:
            return {}
        keys = sorted(self.sums)
        totals = dict(zip(keys, distributed.all_sum([self.sums[k] for k in keys])))
        self.sums = {}
        seen = max(totals.pop("samples", 0.0), 1.0)
        return {"rate_penalty": totals.pop("penalty", 0.0) / seen, "rates": {k: v / seen for k, v in totals.items()}}

    def postfix(self, entry: dict) -> dict:
        rates = entry.get("rates")
        return {"rate": f"{sum(rates.values()) / len(rates):.3f}"} if rates else {}

    def summary(self, history: list) -> dict:
        """What the checkpoint records: the settings and the last epoch's mean probability per site."""
        last = history[-1] if history else {}
        return {"weight": self.settings.weight, "targets": list(self.settings.targets), "form": self.settings.form,
                "sites": self.settings.sites,
                "final_penalty": last.get("rate_penalty"), "final_rates": last.get("rates")}

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()


def train(task: TaskData, model_cfg: ModelConfig | SNNConfig, cfg: TrainConfig, out_dir: str | Path,
          *, task_options: dict | None = None, progress: bool = True,
          log: Callable[[str], None] = print, init: PSpikeSSM | None = None,
          qat_weight_bits: int | None = None, resume: str | Path | None = None,
          checkpoint_every: int | None = None) -> dict:
    """Train, evaluate over ``cfg.eval_seeds`` inference seeds, write ``model.pt`` and ``metrics.json``.

    ``init`` starts from a trained model (fine-tuning); ``qat_weight_bits`` trains with the
    synaptic weights fake-quantized to that many Lava weight bits (quantization-aware training).
    ``out_dir/resume.pt`` holds the training state at each epoch's end (and every
    ``checkpoint_every`` steps) until the outputs are written; ``resume`` is the folder of a killed
    run's resume.pt to continue. Under torchrun the ranks share the global batch ``cfg.batch_size``
    and rank 0 alone writes and logs.
    """
    ranks = distributed.ranks()
    device = resolve_device(cfg.device)
    out_dir = Path(out_dir)
    if not ranks.main:
        log = lambda msg: None  # noqa: E731
    torch.manual_seed(cfg.seed)
    model = (init if init is not None else build_model(model_cfg)).to(device)
    identity = run_identity(task, model, cfg, task_options, qat_weight_bits, init, ranks.world)
    state = load_training_state(resume, identity) if resume is not None else None
    if state is None and (out_dir / RESUME_FILE).is_file():
        log(f"note: {out_dir} holds the state of an unfinished run, which this run replaces (continue such a run "
            f"with --resume {out_dir})")
    if qat_weight_bits is not None:
        from .quant.qat import add_fake_quant

        add_fake_quant(model, qat_weight_bits)
    if ranks.world > 1:  # dropout draws from torch's generator: a stream of its own on each rank
        torch.manual_seed(int(hash_u32(cfg.seed, RANK_STREAM, ranks.rank, 0, 0)))
    optimizer = build_optimizer(model, cfg)
    sampler = distributed.GlobalBatchSampler(len(task.train), cfg.batch_size, cfg.seed, ranks.rank, ranks.world)
    if sampler.dropped:
        log(f"note: each epoch's last {len(task.train) % cfg.batch_size} sample(s) are not trained on: fewer than "
            f"the {ranks.world} ranks (one process would train on them)")
    total = len(sampler) * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total, max(1, int(cfg.warmup_fraction * total))))
    done = _restore(state, model, optimizer, scheduler) if state is not None else Progress()
    if state is not None:
        log(f"resuming {resume} at epoch {done.epoch + 1}, step {done.step_in_epoch + 1} of {len(sampler)}")
    net = replicate(model, device)
    hook = _CheckpointHook()
    resume_path = out_dir / RESUME_FILE

    def checkpoint() -> None:
        elapsed = done.elapsed_s + time.perf_counter() - start
        _save_training_state(resume_path, identity, model, optimizer, scheduler, done, elapsed)
        hook.written()

    rates = _RateLog(model, cfg, total)
    start = time.perf_counter()
    bar = tqdm(total=total, initial=done.global_step, desc=f"train {task.name}", unit="step",
               disable=not (progress and ranks.main) or None, dynamic_ncols=True)
    for epoch in range(done.epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        noise_seed = epoch_noise_seed(cfg.seed, epoch)
        model.train()
        for step, idx in enumerate(sampler):
            if step < done.step_in_epoch:
                continue  # taken before the run was stopped
            x, y, lengths = task.train[idx]
            x, y = x.to(device), y.to(device)
            logits = net(x, _lengths_arg(lengths, x.shape[1], device), noise=SampleNoise(noise_seed, idx))
            loss = batch_loss(logits, y, ranks.world / sampler.global_size(step))
            loss = loss + rates.penalty(lengths, x.shape[1], done.global_step, ranks.world / sampler.global_size(step))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            done.sums[0] += float(F.cross_entropy(logits.detach(), y, reduction="sum"))
            done.sums[1] += int((logits.argmax(-1) == y).sum())
            done.sums[2] += len(y)
            done.step_in_epoch, done.global_step = step + 1, done.global_step + 1
            bar.update(1)
            if checkpoint_every and done.global_step % checkpoint_every == 0 and step + 1 < len(sampler):
                checkpoint()
        loss_sum, correct, seen = distributed.all_sum(done.sums)
        done.history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                             "elapsed_s": done.elapsed_s + time.perf_counter() - start, **rates.epoch_end()})
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", **rates.postfix(done.history[-1]))
        done.epoch, done.step_in_epoch, done.sums = epoch + 1, 0, [0.0, 0, 0]
        checkpoint()
    bar.close()
    rates.close()
    _swap_batch_norm(model, nn.BatchNorm1d)
    train_time = done.elapsed_s + time.perf_counter() - start
    seeds = list(range(cfg.eval_seeds))
    result = evaluate(model, task.test, seeds, device=device)
    if qat_weight_bits is not None:
        from .quant.qat import remove_fake_quant

        remove_fake_quant(model)
    history = done.history
    metrics = {
        "task": task.name,
        "test_accuracy": result["accuracy"],
        "test_accuracy_std": result["accuracy_std"],
        "test_accuracy_per_seed": result["per_seed"],
        "inference_seeds": seeds,
        "train_time_s": train_time,
        "epochs": cfg.epochs,
        "final_train_loss": history[-1]["train_loss"],
        "final_train_accuracy": history[-1]["train_accuracy"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "ranks": ranks.world,
        "qat_weight_bits": qat_weight_bits,
        "rate_penalty": rates.summary(history),
        "history": history,
    }
    model.cpu()
    if ranks.main:
        # published together, metrics.json last: a run killed while saving never leaves its model
        # beside the metrics of the previous run; resume.pt goes once both are in place
        with atomic_paths(out_dir / "model.pt", out_dir / "metrics.json") as (ckpt_tmp, metrics_tmp):
            torch.save(checkpoint_payload(model, task=task.name, task_options=task_options,
                                          train_config=cfg.to_dict(), metrics=metrics), ckpt_tmp)
            metrics_tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        resume_path.unlink(missing_ok=True)
    distributed.barrier()
    how = ("deterministic inference" if isinstance(model, SNN)
           else f"stochastic inference, {len(seeds)} seeds")
    log(f"{task.name}: test accuracy {100 * result['accuracy']:.2f}% ± {100 * result['accuracy_std']:.2f} "
        f"({how}), trained in {train_time:.1f} s; wrote {out_dir / 'model.pt'}")
    return metrics
