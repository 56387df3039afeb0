"""Training and stochastic evaluation of float models.

Optimizer as the authors use it: AdamW, with the SSM kernel parameters (``log_dt``, ``A``, ``B``)
in their own group at lr 1e-3 and no weight decay; a cosine schedule with linear warm-up over all
steps. Inference stays stochastic: accuracy is measured once per inference seed and reported as
the mean (and spread) over seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data.dataset import SeqDataset, TaskData
from .errors import UserError
from .export.checkpoint import checkpoint_payload
from .fileio import atomic_paths
from .models import SNN, ModelConfig, PSpikeSSM, SNNConfig


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

    def __post_init__(self):
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and self.ssm_lr > 0):
            raise UserError("learning rates must be positive")
        if self.eval_seeds < 1:
            raise UserError(f"--eval-seeds must be at least 1, got {self.eval_seeds}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SeededNoise:
    """A noise source drawing ``torch.rand`` from one seeded generator (reproducible inference)."""

    def __init__(self, seed: int, device: str | torch.device = "cpu"):
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, site, shape, device, dtype):
        return torch.rand(shape, generator=self.generator, device=device, dtype=dtype)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda[:N] or auto, got {name!r}")
    return torch.device(name)


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


def batches(data: SeqDataset, batch_size: int, shuffle: bool, generator: Optional[torch.Generator] = None):
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield data.x[idx], data.y[idx], data.lengths[idx]


def _lengths_arg(lengths: torch.Tensor, seq_len: int, device) -> Optional[torch.Tensor]:
    return None if bool((lengths == seq_len).all()) else lengths.to(device)


@torch.no_grad()
def predict(model: PSpikeSSM, data: SeqDataset, seed: int, batch_size: int = 256,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Class predictions of one stochastic inference pass with a seeded noise stream."""
    model.eval()
    device = torch.device(device)
    noise = SeededNoise(seed, device)
    out = []
    for x, _, lengths in batches(data, batch_size, shuffle=False):
        logits = model(x.to(device), _lengths_arg(lengths, x.shape[1], device), noise=noise)
        out.append(logits.argmax(-1).cpu())
    return torch.cat(out)


def evaluate(model: PSpikeSSM, data: SeqDataset, seeds, batch_size: int = 256,
             device: str | torch.device = "cpu") -> dict:
    """Accuracy of stochastic inference for each seed, and their mean and standard deviation."""
    accs = [float((predict(model, data, s, batch_size, device) == data.y).float().mean()) for s in seeds]
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"accuracy": mean, "accuracy_std": std, "per_seed": accs, "seeds": list(seeds)}


def build_model(cfg: ModelConfig | SNNConfig) -> PSpikeSSM | SNN:
    """The network a config describes: a P-SpikeSSM, or a SiLIF / C-SiLIF network."""
    return SNN(cfg) if isinstance(cfg, SNNConfig) else PSpikeSSM(cfg)


def train(task: TaskData, model_cfg: ModelConfig | SNNConfig, cfg: TrainConfig, out_dir: str | Path,
          *, task_options: dict | None = None, progress: bool = True,
          log: Callable[[str], None] = print, init: PSpikeSSM | None = None,
          qat_weight_bits: int | None = None) -> dict:
    """Train, evaluate over ``cfg.eval_seeds`` inference seeds, write ``model.pt`` and ``metrics.json``.

    ``init`` starts from a trained model (fine-tuning); ``qat_weight_bits`` trains with the
    synaptic weights fake-quantized to that many Lava weight bits (quantization-aware training).
    """
    device = resolve_device(cfg.device)
    out_dir = Path(out_dir)
    torch.manual_seed(cfg.seed)
    model = (init if init is not None else build_model(model_cfg)).to(device)
    if qat_weight_bits is not None:
        from .quant.qat import add_fake_quant

        add_fake_quant(model, qat_weight_bits)
    optimizer = build_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(task.train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total, max(1, int(cfg.warmup_fraction * total))))
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"train {task.name}", unit="step", disable=not progress or None,
               dynamic_ncols=True)
    for epoch in range(cfg.epochs):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y, lengths in batches(task.train, cfg.batch_size, True, shuffle_gen):
            x, y = x.to(device), y.to(device)
            logits = model(x, _lengths_arg(lengths, x.shape[1], device))
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(y)
            bar.update(1)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "elapsed_s": time.perf_counter() - start})
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    bar.close()
    train_time = time.perf_counter() - start
    seeds = list(range(cfg.eval_seeds))
    result = evaluate(model, task.test, seeds, device=device)
    if qat_weight_bits is not None:
        from .quant.qat import remove_fake_quant

        remove_fake_quant(model)
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
        "qat_weight_bits": qat_weight_bits,
        "history": history,
    }
    model.cpu()
    # published together, metrics.json last: a run killed while saving never leaves its model
    # beside the metrics of the previous run
    with atomic_paths(out_dir / "model.pt", out_dir / "metrics.json") as (ckpt_tmp, metrics_tmp):
        torch.save(checkpoint_payload(model, task=task.name, task_options=task_options,
                                      train_config=cfg.to_dict(), metrics=metrics), ckpt_tmp)
        metrics_tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    how = ("deterministic inference" if isinstance(model, SNN)
           else f"stochastic inference, {len(seeds)} seeds")
    log(f"{task.name}: test accuracy {100 * result['accuracy']:.2f}% ± {100 * result['accuracy_std']:.2f} "
        f"({how}), trained in {train_time:.1f} s; wrote {out_dir / 'model.pt'}")
    return metrics
