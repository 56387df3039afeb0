"""The ``pspike`` command: train, eval, export, inspect, simulate, verify, report, demo.

Exit codes: 0 success, 1 a check failed, 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from . import __version__
from .errors import CheckFailed, UserError

SNN_KINDS = ("silif", "csilif", "cadlif", "rf")

#: the preset a task trains with when --preset is not given
DEFAULT_PRESET = {"sdigits": "small", "psdigits": "small", "listops": "listops",
                  "smnist": "psmnist", "psmnist": "psmnist", "sdigits-spikes": "small", "shd": "small", "ssc": "small"}

#: command-line flag -> ModelConfig field
MODEL_FLAGS = {"d_model": "d_model", "d_state": "d_state", "layers": "n_layers", "ssm_init": "init",
               "discretization": "discretization", "phi": "phi", "psi": "psi", "norm": "norm",
               "dropout": "dropout", "sampler": "sampler", "dt_min": "dt_min", "dt_max": "dt_max"}
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "ssm_lr", "seed", "device", "eval_seeds", "rate_penalty",
               "rate_target", "rate_penalty_form", "rate_warmup_fraction", "rate_sites")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (overrides the preset)")
    g.add_argument("--d-model", type=int, help="neurons per layer (H)")
    g.add_argument("--d-state", type=int, help="SSM state size per neuron (N, even)")
    g.add_argument("--layers", type=int, help="number of P-SpikeSSM blocks")
    g.add_argument("--ssm-init", help="SSM initialization: legs, lin or inv")
    g.add_argument("--discretization", help="zoh or bilinear")
    g.add_argument("--phi", help="activation after the SSM: identity, relu or gelu")
    g.add_argument("--psi", help="activation after the SpikeMixer: identity, relu or gelu")
    g.add_argument("--norm", help="batch, layer (float only) or none")
    g.add_argument("--postnorm", action="store_true", default=None, help="normalize after the residual add")
    g.add_argument("--no-residual", action="store_true", default=None, help="drop the residual path")
    g.add_argument("--bidirectional", action="store_true", default=None,
                   help="add a time-reversed SSM branch (float only, not deployable)")
    g.add_argument("--share-ab", action="store_true", default=None, help="share A and B across a layer")
    g.add_argument("--dropout", type=float)
    g.add_argument("--sampler", help="stochastic (P-SpikeSSM) or lif (the deterministic baseline)")
    g.add_argument("--dt-min", type=float)
    g.add_argument("--dt-max", type=float)


INPUTS_HELP = ("inputs of your own: an .npz with x (samples, steps, channels), optional labels and lengths "
               "(README, 'Inputs of your own'); default: the test split of the model's task")


def _add_compare_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument("netlist")
    p.add_argument("--inputs", metavar="FILE.npz", help=INPUTS_HELP)
    p.add_argument("--data-dir", help="folder with the real dataset's files (shd, ssc, ...; default: the one the "
                                      "checkpoint records)")
    p.add_argument("--backend", default="reference", help="reference (default) or lava")
    p.add_argument("--samples", type=int, help="test samples (default: all for reference, 8 for lava)")
    p.add_argument("--seed", type=int, help="first random seed, shared by both (default: the netlist's)")
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds (seed, seed+1, ...): accuracies averaged, spikes pooled (default 1)")
    p.add_argument("--cost-model", action="append", metavar="NAME|JSON",
                   help="energy cost model: 45nm, loihi1, loihi2 (with static power) or a JSON file (repeatable; "
                        "default: 45nm and loihi1)")
    p.add_argument("--time-per-step-us", type=float, metavar="US",
                   help="Loihi 2 time per step for static energy (default 152.8 us: the PilotNet LIF benchmark of "
                        "lava-dl, docs/energy-model.md)")
    p.add_argument("--max-accuracy-drop", type=float, default=1.0, help="in points (default 1.0)")
    p.add_argument("--max-rate-diff", type=float, default=0.05,
                   help="largest relative spike-rate difference of any layer (default 0.05)")
    p.add_argument("--min-agreement", type=float, default=0.85,
                   help="smallest fraction of identical spikes of any layer (default 0.85; a spike flipped by "
                        "quantization changes what later layers see, so agreement falls with depth)")


def _rate_targets(text: str) -> tuple:
    """``--rate-target 0.02`` or ``0.05,0.02,0.02,0.01`` (one per layer)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected probabilities separated by commas, got {text!r}") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, except that a mistake on the command line is one line on stderr and exit 2
    (argparse prints its whole usage block first). Subcommand parsers are made of the same class."""

    def error(self, message: str):
        from .distributed import print_error

        line = " ".join(message.split())
        print_error(f"{self.prog}: error: {line} (see {self.prog} --help)")  # under torchrun: rank 0's line
        self.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pspike", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pspike-neuro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a float model on a task and write DIR/model.pt")
    p.add_argument("--task", help="sdigits, psdigits, listops, smnist, psmnist, sdigits-spikes, shd, ssc (default "
                   "with --init: the checkpoint's task)")
    p.add_argument("--model", default="pspike",
                   help="pspike (P-SpikeSSM, default), silif, csilif, cadlif or rf (SiLIF / C-SiLIF / CadLIF / "
                        "resonate-and-fire feed-forward networks)")
    p.add_argument("--out", help="output folder for model.pt and metrics.json (and resume.pt while it trains); "
                                 "required unless --resume gives it")
    p.add_argument("--resume", metavar="DIR", help="continue the killed run whose resume.pt lies in DIR: the same "
                   "command line plus --resume (writes into DIR unless --out says otherwise; docs/scaling.md)")
    p.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="also write resume.pt every STEPS optimizer steps (default: at the end of each epoch only)")
    p.add_argument("--init", metavar="CKPT", help="start from this checkpoint (its model config is used)")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware training: synaptic weights fake-quantized to --weight-bits")
    p.add_argument("--weight-bits", type=int, default=8, help="Lava weight bits for --qat (default 8)")
    p.add_argument("--preset", help="model size preset (small, tiny, psmnist, listops, lra-image)")
    p.add_argument("--data-dir", help="folder with the real dataset's files (smnist, psmnist, shd)")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="an option of the task, recorded in the checkpoint and used by export, simulate and "
                        "verify (repeatable): shd n_steps=250 max_time=1.0 spatial_bin=5 limit_train=N; "
                        "ssc n_steps=300 max_time=1.2 spatial_bin=5 limit_train=N eval_on_valid=1; "
                        "listops n_train=N seed=S ...; smnist/psmnist limit_train=N")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--ssm-lr", type=float, help="learning rate of log_dt, A, B (default 1e-3)")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="cpu, cuda or auto")
    g.add_argument("--eval-seeds", type=int, help="inference seeds for the final test accuracy")
    g = p.add_argument_group("spike-rate regularization (docs/energy-model.md, 'Making the network sparse')")
    g.add_argument("--rate-penalty", type=float, metavar="LAMBDA",
                   help="weight of a penalty on every sampler's (P-SpikeSSM) or neuron layer's (SiLIF) expected firing "
                        "probability above its target (default 0: none)")
    g.add_argument("--rate-target", type=_rate_targets, metavar="P[,P...]",
                   help="probability each neuron may reach for free: one value, or one per layer (default 0)")
    g.add_argument("--rate-penalty-form", help="mean (default; the same push on every neuron) or neuron (concave per "
                                               "neuron: silences whole neurons, which export --prune-silent removes)")
    g.add_argument("--rate-sites", help="all (default: every sampler) or output (a P-SpikeSSM's output samplers only: "
                                        "the spikes that leave a neuron and decide whether it can be pruned)")
    g.add_argument("--rate-warmup", type=float, dest="rate_warmup_fraction", metavar="FRACTION",
                   help="ramp the penalty up linearly over this fraction of the training steps (default 0)")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("eval", help="evaluate a checkpoint with stochastic inference")
    p.add_argument("checkpoint")
    p.add_argument("--seeds", type=int, default=5, help="number of inference seeds (default 5)")
    p.add_argument("--data-dir", help="folder with the real dataset's files (smnist, psmnist)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--fake-quant", type=int, metavar="BITS",
                   help="evaluate with the synaptic weights fake-quantized to BITS Lava weight bits")
    p.add_argument("--inputs", metavar="FILE.npz", help=INPUTS_HELP + " (labels required)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="quantize a checkpoint and write a netlist (.net), or write it as NIR (.nir)")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="file to write (model.net, or graph.nir with --format nir)")
    p.add_argument("--format", default="auto",
                   help="net (the quantized netlist) or nir (the float graph; imported graphs); auto: from -o's suffix")
    p.add_argument("--calib-data", metavar="FILE.npz",
                   help="calibration inputs (the --inputs layout), for models without a task; default: the task's "
                        "training split, or random spike trains (said so in the output)")
    p.add_argument("--weight-bits", type=int, default=8, help="Lava weight bits of the synapses (1..8)")
    p.add_argument("--prob-bits", type=int, default=16, help="bits of sampler probabilities (1..24)")
    p.add_argument("--ssm-bits", type=int, default=8, help="mantissa bits of Bbar, C and D")
    p.add_argument("--affine-bits", type=int, default=12, help="mantissa bits of the sampler and norm scales")
    p.add_argument("--calib-samples", type=int, default=256, help="training samples used for calibration")
    p.add_argument("--density", type=float, help="magnitude-prune each mixer to this fraction of weights")
    p.add_argument("--prune-silent", type=float, metavar="P",
                   help="remove the neurons whose mean output probability on the calibration data is below P, with "
                        "their modes, synapses and readout columns; their expected contribution is folded into the "
                        "next bias (pspike inspect shows what was removed)")
    p.add_argument("--seed", type=int, default=0, help="random seed recorded for the deployed samplers")
    p.add_argument("--data-dir", help="folder with the real dataset's files (smnist, psmnist)")
    p.add_argument("--netx", metavar="FILE", help="also write the readout as a lava-dl netx HDF5 file")
    p.add_argument("--stable-decays", action="store_true",
                   help="round C-SiLIF decays that land on |lambda| >= 1 to the nearest 12-bit value inside the unit "
                        "circle instead of refusing (nearly undamped neurons of imported models)")
    p.add_argument("--gelu", default="none", help="none (default: GELU is refused) or table: a P-SpikeSSM's GELUs run "
                                                  "as a piecewise-linear table (docs/numerics.md; the authors' models)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("import", help="turn another tool's model (a NIR graph, a SiLIF-repository checkpoint) into a "
                                      "checkpoint DIR/model.pt")
    p.add_argument("source", help="the file to import (a .nir graph, a SiLIF-repository best_model.pth)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for model.pt and import.json")
    p.add_argument("--format", default="auto", help="auto (from the file), nir or silif-repo")
    p.add_argument("--dt", type=float, help="time step of the discretization in seconds (default: the graph's "
                                            "metadata; snnTorch exports need 1e-4, Norse 1.1 exports dt squared)")
    p.add_argument("--discretization", help="euler (default; what snnTorch and Norse compute) or exact")
    p.add_argument("--input", default="spikes", help="spikes (default: inputs are spike trains) or currents")
    p.add_argument("--kernel", help="pspikessm: exact (default; eigen-decomposition of the DPLR kernels) or refit "
                                    "(least-squares fit with the checkpoint's mode count, or --refit-modes)")
    p.add_argument("--refit-modes", type=int, help="pspikessm --kernel refit: modes per neuron (default d_state/2)")
    p.add_argument("--two-sided", action="store_true",
                   help="pspikessm: keep the anti-causal half of two-sided kernels (float only; export refuses it)")
    p.add_argument("--inputs", metavar="FILE.npz", help="pspikessm: measure the logit change of each conversion "
                                                        "choice on these inputs (the --inputs layout)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("inspect", help="describe a netlist: nodes, bit widths, memory, Loihi 2 cores")
    p.add_argument("netlist")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("simulate", help="run a netlist on a task's test split (Lava or reference)")
    p.add_argument("netlist")
    p.add_argument("--backend", default="reference", help="reference (numpy, bit-exact) or lava")
    p.add_argument("--precision", default="fixed", help="fixed (the integer network) or float (lava only)")
    p.add_argument("--task", help="embedded task to read inputs from (default: the netlist's)")
    p.add_argument("--samples", type=int, help="test samples (default: all for reference, 8 for lava)")
    p.add_argument("--seed", type=int, help="random seed of the samplers (default: the netlist's)")
    p.add_argument("--out", help="folder for activity.npz and summary.json")
    p.add_argument("--data-dir", help="folder with the real dataset's files (smnist, psmnist)")
    p.add_argument("--inputs", metavar="FILE.npz", help=INPUTS_HELP)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("verify", help="compare the float model and the deployed netlist; exit 1 if a tolerance fails")
    _add_compare_flags(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", help="verify, then write an HTML/Markdown/JSON report with figures to DIR")
    _add_compare_flags(p)
    p.add_argument("--out", required=True, help="folder for report.html, report.md, report.json, figures/")
    p.add_argument("--pareto", metavar="FILE.json",
                   help="sparsity-sweep results to place the model on, with a figure (without it: the placement in words "
                        "when this source tree holds benchmarks/results/sparsity_pareto.json)")
    p.add_argument("--neurobench", action="store_true",
                   help="also run NeuroBench's activation sparsity, synaptic operations and membrane updates on the "
                        "float model and put them next to our counts (needs the neurobench package: the dev extras)")
    p.add_argument("--json", action="store_true", help="print the report's JSON")

    p = sub.add_parser("demo", help="the main job on embedded data: train, export, simulate, verify, report (sdigits)")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    p.add_argument("--quick", action="store_true", help="a tiny model and 2 epochs (a smoke run)")
    p.add_argument("--lava-samples", type=int, default=4, help="test samples simulated in Lava (default 4)")
    p.add_argument("--seeds", type=int, default=3, help="seeds for verification (default 3)")
    p.add_argument("--json", action="store_true")
    return parser


def _train_settings(args) -> tuple[str, dict, dict]:
    from .models import preset

    name = args.preset or DEFAULT_PRESET.get(args.task, "small")
    chosen = preset(name)
    model_kw = dict(chosen.model)
    train_kw = dict(chosen.train)
    for flag, field in MODEL_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            model_kw[field] = value
    if getattr(args, "postnorm", None):
        model_kw["prenorm"] = False
    if getattr(args, "no_residual", None):
        model_kw["residual"] = False
    if getattr(args, "bidirectional", None):
        model_kw["bidirectional"] = True
    if getattr(args, "share_ab", None):
        model_kw["share_ab"] = True
    for flag in TRAIN_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            train_kw[flag] = value
    return name, model_kw, train_kw


def _train_task(args, init):
    """The task ``train`` trains on and the ``task_options`` its checkpoint records: the data folder
    and the ``--task-option`` values (or, fine-tuning on the same task, the options ``init`` records)."""
    from .data import load_task, parse_task_options

    options = parse_task_options(args.task_option)
    if init is not None and not args.task_option and init.task == args.task:
        options = dict(init.task_options.get("options") or {})
    task = load_task(args.task, data_dir=args.data_dir, **options)
    task_options = {"data_dir": str(Path(args.data_dir).resolve())} if args.data_dir else {}
    if options:
        task_options["options"] = options
    return task, task_options


def cmd_train(args) -> int:
    from .export.checkpoint import load_checkpoint
    from .models import ModelConfig
    from .training import TrainConfig, train

    if not args.out:
        raise UserError("--out is required (or --resume DIR, which continues the run in DIR)")
    init = None
    if args.init:
        init = load_checkpoint(args.init)
        if init.model_type != "pspike" and args.qat:
            raise UserError(f"--qat: quantization-aware training is for P-SpikeSSM checkpoints; {args.init} is "
                            f"{init.model_type}")
        changed = [flag for flag in MODEL_FLAGS if getattr(args, flag, None) is not None]
        if changed or args.preset:
            raise UserError(f"--init {args.init}: the model size comes from the checkpoint; drop "
                            f"{', '.join('--' + f.replace('_', '-') for f in changed) or '--preset'}")
        args.task = args.task or init.task
    if not args.task:
        raise UserError("--task is required (or --init with a checkpoint that records its task)")
    if args.qat and not 1 <= args.weight_bits <= 8:
        raise UserError(f"--weight-bits must be in 1..8 (Lava synapses hold 8-bit weights), got {args.weight_bits}")
    if args.model not in ("pspike",) + SNN_KINDS:
        raise UserError(f"--model must be pspike, silif or csilif (or the SiLIF repository's cadlif or rf), "
                        f"got {args.model!r}")
    if args.model != "pspike" and init is None:
        return _train_snn(args)
    preset_name, model_kw, train_kw = _train_settings(args)
    task, task_options = _train_task(args, init)
    if init is not None:
        cfg = init.config
        preset_name = None
        if args.qat:
            train_kw = {"epochs": 10, "lr": 1e-3, "warmup_fraction": 0.0,
                        **{k: v for k, v in train_kw.items() if getattr(args, k, None) is not None}}
        if (task.d_input, task.n_classes) != (cfg.d_input, cfg.n_classes):
            raise UserError(f"--init {args.init}: model expects d_input={cfg.d_input}, n_classes={cfg.n_classes}; "
                            f"task {task.name} has {task.d_input}, {task.n_classes}")
    else:
        cfg = ModelConfig(d_input=task.d_input, n_classes=task.n_classes, input_kind=task.input_kind, **model_kw)
    tcfg = TrainConfig(**train_kw)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    metrics = train(task, cfg, tcfg, args.out, task_options=task_options,
                    progress=not (args.quiet or args.json), log=log,
                    init=init.model if init is not None else None,
                    qat_weight_bits=args.weight_bits if args.qat else None,
                    resume=args.resume, checkpoint_every=args.checkpoint_every)
    if args.json:
        summary = {k: v for k, v in metrics.items() if k != "history"}
        summary.update(checkpoint=str(Path(args.out) / "model.pt"), preset=preset_name)
        print(json.dumps(summary, indent=2))
    return 0


#: training defaults of the SiLIF networks (the authors' SHD settings: Adam-like, lr 1e-3..5e-3, no decay)
SNN_TRAIN_DEFAULTS = {"silif": dict(epochs=20, lr=1e-2, weight_decay=0.0),
                      "csilif": dict(epochs=20, lr=5e-3, weight_decay=0.0),
                      "cadlif": dict(epochs=20, lr=1e-2, weight_decay=0.0),
                      "rf": dict(epochs=20, lr=1e-2, weight_decay=0.0)}
#: P-SpikeSSM flags that mean nothing for a SiLIF network
PSPIKE_ONLY_FLAGS = ("d_state", "ssm_init", "discretization", "phi", "psi", "norm", "sampler", "postnorm",
                     "no_residual", "bidirectional", "share_ab", "preset", "qat")


@contextlib.contextmanager
def snn_threads(device: str):
    """One torch thread while a SiLIF network trains on the CPU: its neurons step through time on
    (batch, neurons) tensors, too small for intra-op threads, whose waiting made a training step 5-13x
    slower on the shared 2-core machine (128 neurons: 0.10 s with one thread, 0.56-1.3 s with two)."""
    import torch

    from .training import resolve_device

    before = None
    if resolve_device(str(device)).type == "cpu":
        before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before is not None:
            torch.set_num_threads(before)


def _train_snn(args) -> int:
    """``pspike train --model silif|csilif|cadlif|rf``: a feed-forward network of one neuron kind."""
    from .models import SNNConfig
    from .training import TrainConfig, train

    used = [f for f in PSPIKE_ONLY_FLAGS if getattr(args, f, None)]
    if used:
        raise UserError(f"--model {args.model}: {', '.join('--' + f.replace('_', '-') for f in used)} "
                        "apply to P-SpikeSSM only")
    task, task_options = _train_task(args, None)
    if task.input_kind != "real":
        raise UserError(f"--model {args.model}: task {task.name} has token inputs; SiLIF networks take spike "
                        "or real-valued inputs (try sdigits-spikes or shd)")
    kw = {"kind": args.model, "d_input": task.d_input, "n_classes": task.n_classes,
          "d_hidden": args.d_model or 128, "n_layers": args.layers or 2,
          "input_counts": bool((task.train.x > 1).any())}  # counts (ssc): deployed as counts, not spikes
    for flag in ("dropout", "dt_min", "dt_max"):
        if getattr(args, flag) is not None:
            kw[flag] = getattr(args, flag)
    cfg = SNNConfig(**kw)
    train_kw = dict(SNN_TRAIN_DEFAULTS[args.model])
    for flag in TRAIN_FLAGS:
        if getattr(args, flag, None) is not None:
            train_kw[flag] = getattr(args, flag)
    if "eval_seeds" not in train_kw:
        train_kw["eval_seeds"] = 1  # deterministic neurons: one pass is the accuracy
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    with snn_threads(train_kw.get("device", "cpu")):
        metrics = train(task, cfg, TrainConfig(**train_kw), args.out, task_options=task_options,
                        progress=not (args.quiet or args.json), log=log, resume=args.resume,
                        checkpoint_every=args.checkpoint_every)
    if args.json:
        summary = {k: v for k, v in metrics.items() if k != "history"}
        summary.update(checkpoint=str(Path(args.out) / "model.pt"), model=args.model)
        print(json.dumps(summary, indent=2))
    return 0


def cmd_eval(args) -> int:
    from .data import SeqDataset, load_recorded_task
    from .data.inputs import load_inputs_file
    from .export.checkpoint import load_checkpoint
    from .training import evaluate, resolve_device

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=str(device))
    if args.inputs:
        given = load_inputs_file(args.inputs)
        if given.labels is None:
            raise UserError(f"inputs {args.inputs}: has no labels, so there is no accuracy to evaluate")
        name, test = given.name, SeqDataset.from_numpy(given.x, given.labels, given.lengths)
    else:
        if not ckpt.task:
            raise UserError(f"checkpoint {args.checkpoint}: records no task to evaluate on; give --inputs FILE.npz")
        task = load_recorded_task(ckpt.task, ckpt.task_options, data_dir=args.data_dir)
        if task.n_classes != ckpt.config.n_classes:
            raise UserError(f"checkpoint {args.checkpoint}: model has {ckpt.config.n_classes} classes but task "
                            f"{task.name} has {task.n_classes}")
        name, test = task.name, task.test
    # deterministic neurons (SiLIF, imported graphs): one pass is the accuracy
    seeds = list(range(args.seeds)) if ckpt.model_type == "pspike" else [0]
    if args.fake_quant is not None:
        from .quant.qat import fake_quantized

        if ckpt.model_type != "pspike":
            raise UserError(f"--fake-quant is for P-SpikeSSM checkpoints; {args.checkpoint} is {ckpt.model_type}")
        if not 1 <= args.fake_quant <= 8:
            raise UserError(f"--fake-quant must be in 1..8 (Lava synapses hold 8-bit weights), got {args.fake_quant}")
        with fake_quantized(ckpt.model, args.fake_quant):
            result = evaluate(ckpt.model, test, seeds, args.batch_size, device)
    else:
        result = evaluate(ckpt.model, test, seeds, args.batch_size, device)
    out = {"checkpoint": str(args.checkpoint), "task": name, "test_accuracy": result["accuracy"],
           "test_accuracy_std": result["accuracy_std"], "test_accuracy_per_seed": result["per_seed"],
           "inference_seeds": result["seeds"], "n_test": len(test), "fake_quant_bits": args.fake_quant}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{name}: test accuracy {100 * out['test_accuracy']:.2f}% ± "
              f"{100 * out['test_accuracy_std']:.2f} over {len(seeds)} inference seeds ({len(test)} samples)")
    return 0


def cmd_demo(args) -> int:
    """Train on sdigits, export, simulate (reference on the whole test set, Lava on a few samples),
    verify against the float model and write the report."""
    from .data import load_task
    from .export.build import build_netlist
    from .export.checkpoint import load_checkpoint
    from .export.hdf5 import write_netlist
    from .models import ModelConfig, preset
    from .quant.quantize import QuantConfig
    from .report import write_report
    from .sim import lava_backend  # noqa: F401  (Lava must pick the multiprocessing start method first)
    from .sim.run import simulate_command
    from .training import TrainConfig, train
    from .verify import compare

    out = Path(args.out)
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    task = load_task("sdigits")
    chosen = preset("tiny" if args.quick else "small")
    train_kw = dict(chosen.train)
    if args.epochs is not None:
        train_kw["epochs"] = args.epochs
    cfg = ModelConfig(d_input=task.d_input, n_classes=task.n_classes, input_kind=task.input_kind,
                      **chosen.model)
    say("1/6 training the float P-SpikeSSM on sdigits")
    metrics = train(task, cfg, TrainConfig(**train_kw), out, progress=not args.json, log=say)
    say("2/6 quantizing and exporting the netlist")
    ckpt = load_checkpoint(out / "model.pt")
    netlist, _ = build_netlist(ckpt, QuantConfig())
    write_netlist(netlist, out / "model.net")
    say("3/6 simulating the integer network (reference simulator, whole test set)")
    ref = simulate_command(netlist, backend="reference", task=None, samples=None, seed=None,
                           out=str(out / "reference"), progress=not args.json)
    say(f"4/6 simulating {args.lava_samples} samples in Lava (fixed point)")
    lava = simulate_command(netlist, backend="lava", task=None, samples=args.lava_samples, seed=None,
                            out=str(out / "lava"), progress=not args.json)
    say(f"5/6 verifying against the float model (whole test set, {args.seeds} seeds, common random numbers)")
    result, activity = compare(ckpt, netlist, backend="reference", samples=None, seed=None, seeds=args.seeds,
                               progress=not args.json)
    from .fileio import write_json_atomic

    write_json_atomic(out / "verify.json", result)
    say("6/6 writing the report")
    report = write_report(out / "report", ckpt, netlist, result, activity, netlist_path=str(out / "model.net"))
    energy = result["deployed"]["energy"]["models"]
    summary = {"checkpoint": str(out / "model.pt"), "netlist": str(out / "model.net"),
               "report": report["files"]["html"], "verified": result["passed"],
               "float_accuracy_training_eval": metrics["test_accuracy"],
               "float_accuracy_std": metrics["test_accuracy_std"], "train_time_s": metrics["train_time_s"],
               "float_accuracy": result["float"]["accuracy"], "deployed_accuracy": result["deployed"]["accuracy"],
               "verify_seeds": result["seeds"], "reference_accuracy_seed": ref["accuracy"],
               "lava_accuracy": lava["accuracy"], "lava_samples": lava["samples"],
               "spike_rates": [[x["input"]["deployed_rate"], x["output"]["deployed_rate"]] for x in result["layers"]],
               "max_rate_difference": result["checks"]["max_rate_difference"]["value"],
               "saturation_events": result["deployed"]["saturation_events"],
               "energy_uj_per_inference": {k: m["total_pj"] / 1e6 for k, m in energy.items()},
               "non_spiking_energy_uj_per_inference": {k: m["non_spiking_total_pj"] / 1e6 for k, m in energy.items()},
               "energy_ratio_non_spiking_to_spiking": {k: m["ratio_non_spiking_to_spiking"] for k, m in energy.items()}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        rates = ", ".join(f"{100 * a:.0f}/{100 * b:.0f}%" for a, b in summary["spike_rates"])
        e = ", ".join(f"{v:.1f} uJ ({k}, {summary['energy_ratio_non_spiking_to_spiking'][k]:.2f}x below the "
                      f"non-spiking counterpart)" for k, v in summary["energy_uj_per_inference"].items())
        verdict = "verification PASSED" if result["passed"] else "verification FAILED: " + ", ".join(result["failed_checks"])
        print(f"demo summary ({verdict}):\n"
              f"  float {100 * summary['float_accuracy']:.2f}% vs deployed {100 * summary['deployed_accuracy']:.2f}% "
              f"(full test set, mean of {len(result['seeds'])} seeds, common random numbers); Lava "
              f"{100 * summary['lava_accuracy']:.0f}% on {lava['samples']} samples (bit-exact to the reference)\n"
              f"  spike rates in/out per layer {rates}; largest relative rate difference "
              f"{100 * summary['max_rate_difference']:.2f}%; {summary['saturation_events']} saturation events\n"
              f"  energy per inference: {e}\n"
              f"  report: {summary['report']}")
    return 0


def cmd_export(args) -> int:
    from .export.build import build_netlist
    from .export.checkpoint import load_checkpoint
    from .export.hdf5 import write_netlist
    from .quant.quantize import QuantConfig

    fmt = args.format if args.format != "auto" else ("nir" if str(args.output).endswith(".nir") else "net")
    if fmt not in ("net", "nir"):
        raise UserError(f"--format must be auto, net or nir, got {args.format!r}")
    qc = QuantConfig(weight_bits=args.weight_bits, prob_bits=args.prob_bits, ssm_bits=args.ssm_bits,
                     affine_bits=args.affine_bits, calib_samples=args.calib_samples, density=args.density,
                     seed=args.seed, stable_decays=args.stable_decays, gelu=args.gelu,
                     prune_silent=args.prune_silent)
    ckpt = load_checkpoint(args.checkpoint)
    if fmt == "nir":
        from .export.nir_io import refuse_nir_export, write_nir

        refuse_nir_export(ckpt)
        write_nir(ckpt.model, args.output)
        summary = {"nir": str(args.output), "nodes": len(ckpt.config.nodes), "dt": ckpt.config.dt,
                   "discretization": ckpt.config.discretization}
        print(json.dumps(summary, indent=2) if args.json else
              f"wrote {args.output}: {summary['nodes']} NIR nodes (dt {summary['dt']:g} and the {summary['discretization']} "
              "rule recorded in its metadata)")
        return 0
    if args.data_dir is None:  # calibration reads the data folder the checkpoint records
        check_io(args, ckpt.task_options.get("data_dir"))
    calib = None
    if args.calib_data:
        from .data.inputs import load_inputs_file

        given = load_inputs_file(args.calib_data)
        calib = (given.x, given.lengths)
    netlist, report = build_netlist(ckpt, qc, data_dir=args.data_dir, calib=calib)
    write_netlist(netlist, args.output)
    if args.netx:
        from .export.netx import write_readout_netx

        write_readout_netx(netlist, args.netx)
    summary = {"netlist": str(args.output), **netlist.summary(), **report}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {args.output}: {summary['nodes']} nodes, {summary['nonzero_synapses']} synapses, "
              f"latency {summary['latency_steps']} steps, {report['calibration_saturation_events']} saturation "
              f"events on the calibration data ({report['calibration']}), exported in {report['export_time_s']:.1f} s")
        if report.get("pruned"):
            p = report["pruned"]
            print(f"  removed {p['removed']} of {p['neurons']} neurons whose mean output probability was below "
                  f"{p['threshold']:g} (pspike inspect {args.output} lists them)")
    return 0


def cmd_import(args) -> int:
    from .export.imports import import_model

    record = import_model(args.source, args.output, fmt=args.format, dt=args.dt,
                          discretization=args.discretization, input=args.input, kernel=args.kernel,
                          refit_modes=args.refit_modes, two_sided=args.two_sided, inputs=args.inputs)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    else:
        what = record.get("summary") or (f"{len(record.get('nodes', {}))} nodes, dt {record.get('dt', 0):g} s, "
                                          f"{record.get('discretization', '')} rule")
        print(f"imported {args.source} ({record['format']}, {what}): wrote {record['files']['checkpoint']} "
              f"and {record['files']['record']}")
    return 0


def cmd_inspect(args) -> int:
    from .export.hdf5 import read_netlist
    from .export.inspect import describe, render_text

    info = describe(read_netlist(args.netlist))
    print(json.dumps(info, indent=2) if args.json else render_text(info))
    return 0


def cmd_simulate(args) -> int:
    if args.backend == "lava":
        from .sim import lava_backend  # noqa: F401  (must come before anything picks a multiprocessing context)
    from .export.hdf5 import read_netlist
    from .sim.run import simulate_command

    netlist = read_netlist(args.netlist)
    summary = simulate_command(netlist, backend=args.backend, task=args.task, samples=args.samples,
                               seed=args.seed, precision=args.precision, out=args.out, data_dir=args.data_dir,
                               progress=not args.json, inputs=args.inputs)
    if summary is None:  # a rank other than 0 under torchrun: rank 0 prints and writes
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        rates = ", ".join(f"L{x['layer']} " + (f"{100 * x['input_rate']:.1f}/" if "input_rate" in x else "-/")
                          + f"{100 * x['output_rate']:.1f}%" for x in summary["layers"])
        print(f"{summary['backend']} ({summary['precision']}): accuracy {_pct(summary['accuracy'])} on "
              f"{summary['samples']} {summary['task']} samples, seed {summary['seed']}; spike rates in/out {rates}; "
              f"{summary['saturation_events']} saturation events; {summary['steps_per_second']:.0f} sample-steps/s")
    return 0


def _compare(args):
    if args.backend == "lava":
        from .sim import lava_backend  # noqa: F401  (must come before anything picks a multiprocessing context)
    from .energy.costs import load_cost_model
    from .export.checkpoint import load_checkpoint
    from .export.hdf5 import read_netlist
    from .verify import compare

    models = None
    if args.cost_model:
        models = {}
        for name in args.cost_model:
            models[Path(name).stem if name.endswith(".json") else name] = load_cost_model(name)
    ckpt, netlist = load_checkpoint(args.checkpoint), read_netlist(args.netlist)
    check_io(args, ckpt.task_options.get("data_dir"))  # the data folder the checkpoint records is read too
    result, activity = compare(ckpt, netlist, backend=args.backend, samples=args.samples, seed=args.seed,
                               seeds=args.seeds, max_accuracy_drop=args.max_accuracy_drop,
                               max_rate_diff=args.max_rate_diff, min_agreement=args.min_agreement,
                               cost_models=models, progress=not args.json, inputs=args.inputs,
                               data_dir=args.data_dir,
                               time_per_step_s=None if args.time_per_step_us is None else args.time_per_step_us * 1e-6)
    return ckpt, netlist, result, activity


def _pct(value) -> str:
    return "n/a (no labels)" if value is None else f"{100 * value:.2f}%"


def print_verdict(result: dict) -> None:
    f, d = result["float"], result["deployed"]
    seeds = result["seeds"]
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {seeds[0]}..{seeds[-1]}"
    print(f"float {_pct(f['accuracy'])} vs deployed ({result['backend']}) {_pct(d['accuracy'])} on "
          f"{result['samples']} samples, {which}; same predicted class on "
          f"{100 * result['prediction_agreement']:.2f}% of them")
    for name, model in d["energy"]["models"].items():
        syn = model["accountings"]["synaptic"]
        static = f", of which static {model['static']['pj'] / 1e6:.3f} uJ" if model.get("static") else ""
        print(f"  energy per inference ({name}): full {model['total_pj'] / 1e6:.3f} uJ deployed{static}, "
              f"{model['non_spiking_total_pj'] / 1e6:.3f} uJ non-spiking counterpart "
              f"({model['ratio_non_spiking_to_spiking']:.2f}x); synaptic {syn['total_pj'] / 1e6:.3f} uJ vs "
              f"{syn['non_spiking_total_pj'] / 1e6:.3f} uJ ({syn['ratio_non_spiking_to_spiking']:.2f}x)")
    if result.get("pruning"):
        pr = result["pruning"]
        spikes = sum(r["float_spikes"] for r in pr["populations"])
        print(f"  pruned: {pr['removed']} of {pr['neurons']} neurons (mean output probability < {pr['threshold']:g} on "
              f"the calibration data); the float model's removed neurons spiked {spikes} times here")
    for r in result["layers"]:
        print(f"  layer {r['layer']} ({r['node']}): output rate {100 * r['output']['float_rate']:.2f}% vs "
              f"{100 * r['output']['deployed_rate']:.2f}%, spike agreement {100 * r['output']['agreement']:.2f}%")
    print(f"  saturation events: {d['saturation_events']}")
    for name, c in result["checks"].items():
        print(f"  {name}: {c['value']:.4g} (must be {c['must_be']} {c['limit']})")
    print("PASSED" if result["passed"] else f"FAILED: {', '.join(result['failed_checks'])}")


def cmd_verify(args) -> int:
    _, _, result, _ = _compare(args)
    if result is None:  # a rank other than 0 under torchrun: rank 0 prints the verdict
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_verdict(result)
    return 0 if result["passed"] else 1


def cmd_report(args) -> int:
    from .report import write_report

    ckpt, netlist, result, activity = _compare(args)
    if result is None:  # a rank other than 0 under torchrun: rank 0 writes the report
        return 0
    report = write_report(args.out, ckpt, netlist, result, activity, netlist_path=args.netlist,
                          pareto=_pareto_results(args.pareto), pareto_figure=bool(args.pareto),
                          neurobench=_neurobench(args, ckpt, netlist, result, activity) if args.neurobench else None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_verdict(result)
        print(f"report: {report['files']['html']} (also report.md, report.json, {len(report['figures'])} figures)")
    return 0


#: where benchmarks/sparsity_pareto.py writes its results in a source tree
PARETO_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sparsity_pareto.json"


def _pareto_results(path) -> dict | None:
    """The sweep results ``--pareto`` names (or the source tree's, when present); a named file must be valid."""
    chosen = Path(path) if path else PARETO_RESULTS
    if not chosen.is_file():
        if path:
            raise UserError(f"--pareto {path}: no such file")
        return None
    try:
        data = json.loads(chosen.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--pareto {chosen}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise UserError(f"--pareto {chosen}: not sparsity-sweep results (no 'points' list)")
    return data


def _neurobench(args, ckpt, netlist, result, activity) -> dict:
    """NeuroBench's metrics on the float model (verify's first seed) next to our counts of its spikes."""
    import numpy as np

    try:
        import neurobench  # noqa: F401
    except ImportError:
        raise UserError("--neurobench needs the neurobench package (pip install -e '.[dev]')") from None
    from .energy.crosscheck import neurobench_crosscheck, our_activation_sparsity, run_neurobench
    from .sim.run import load_inputs

    _, x, labels, lengths = load_inputs(netlist, None, args.samples, args.data_dir or ckpt.task_options.get("data_dir"),
                                        args.inputs)
    prob_bits = int(netlist.meta["quant_config"].get("prob_bits", 16))
    nb = run_neurobench(ckpt.model, x, np.zeros(len(x), np.int64) if labels is None else labels, lengths,
                        result["seed"], prob_bits)
    ops = activity.float_ops
    ours = {"activation_sparsity": our_activation_sparsity(activity.float_activations, activity.valid),
            "ops": ops["ops_per_inference"], "synaptic_ops": ops["synaptic_ops_per_inference"],
            "non_spiking_synaptic_ops": ops["non_spiking_synaptic_ops_per_inference"],
            "pruned": (result.get("pruning") or {}).get("removed", 0)}
    return neurobench_crosscheck(nb, ours)


COMMANDS = {"verify": cmd_verify, "report": cmd_report, "train": cmd_train, "eval": cmd_eval, "export": cmd_export,
            "import": cmd_import, "inspect": cmd_inspect, "simulate": cmd_simulate, "demo": cmd_demo}


#: per command: the arguments naming what it reads, and those naming what it writes (file or folder)
READS = {"train": ("init", "data_dir", "resume"), "eval": ("checkpoint", "data_dir", "inputs"),
         "export": ("checkpoint", "data_dir", "calib_data"), "inspect": ("netlist",),
         "simulate": ("netlist", "data_dir", "inputs"),
         "verify": ("checkpoint", "netlist", "cost_model", "inputs", "data_dir"),
         "report": ("checkpoint", "netlist", "cost_model", "inputs", "data_dir", "pareto"),
         "import": ("source", "calib_data", "inputs"),
         "demo": ()}
WRITES = {"train": {"out": "folder"}, "export": {"output": "file", "netx": "file"}, "simulate": {"out": "folder"},
          "report": {"out": "folder"}, "demo": {"out": "folder"}, "import": {"output": "folder"}}
ARG_NAMES = {"checkpoint": "the checkpoint", "netlist": "the netlist", "init": "the --init checkpoint",
             "cost_model": "the cost model", "inputs": "the inputs", "calib_data": "the calibration data",
             "source": "the source", "pareto": "the sweep results"}


def _resume_inputs(folder, out) -> list:
    """What ``train --resume DIR`` reads: DIR/resume.pt, completely, before anything is written.
    Continuing in DIR (the default) the run then replaces that file by newer states, as the run that
    wrote it did, each write an atomic rename: the one file a command reads and then writes, by
    design. Continuing in another --out, DIR is only read, and --out may not contain it."""
    from .fileio import same_path
    from .training import RESUME_FILE

    return [] if out is None or same_path(Path(out), Path(folder)) else [("the training state", Path(folder) / RESUME_FILE)]


def _data_inputs(folder) -> list:
    from .fileio import folder_and_files

    paths = folder_and_files(folder)
    return [("the data folder" if i == 0 else "the data file", p) for i, p in enumerate(paths)]


def check_io(args, recorded_data_dir=None) -> None:
    """Refuse an output that is, contains or would replace anything the command reads (fileio)."""
    from .fileio import check_outputs_spare_inputs

    inputs = []
    for name in READS.get(args.command, ()):
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is None or (name == "cost_model" and not str(value).endswith(".json")):
                continue
            if name == "data_dir":
                inputs += _data_inputs(value)
            elif name == "resume":
                inputs += _resume_inputs(value, args.out)
            else:
                inputs += [(ARG_NAMES[name], Path(value))]
    inputs += _data_inputs(recorded_data_dir)
    outputs = [(f"--{name.replace('_', '-')}", getattr(args, name, None), kind)
               for name, kind in WRITES.get(args.command, {}).items()]
    check_outputs_spare_inputs(outputs, inputs)


def check_args(args) -> None:
    """Refuse, before any work starts, values no command can use: a seed outside the random
    generator's key range, counts below 1, tolerances that are not numbers, outputs that are folders
    where a file is written (or files where a folder is)."""
    import math

    from .fileio import check_output_file, check_output_folder

    if getattr(args, "resume", None) and not getattr(args, "out", None):
        args.out = args.resume  # train --resume DIR continues the run in DIR
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**32:
        raise UserError(f"--seed must be in [0, 2^32) (the key of the random generator), got {seed}")
    for name in ("epochs", "batch_size", "seeds", "eval_seeds", "lava_samples", "checkpoint_every"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in ("max_accuracy_drop", "max_rate_diff"):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    step = getattr(args, "time_per_step_us", None)
    if step is not None and not (math.isfinite(step) and step > 0):
        raise UserError(f"--time-per-step-us must be a finite number > 0, got {step}")
    agreement = getattr(args, "min_agreement", None)
    if agreement is not None and not 0 <= agreement <= 1:
        raise UserError(f"--min-agreement must be in [0, 1], got {agreement}")
    check_io(args)
    for name, kind in WRITES.get(args.command, {}).items():
        value = getattr(args, name, None)
        if value is not None:
            (check_output_folder if kind == "folder" else check_output_file)(value, f"--{name.replace('_', '-')}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import distributed

    if not args.command:
        distributed.print_error(f"pspike: error: a command is required, one of {', '.join(COMMANDS)} (see pspike --help)")
        return 2
    try:
        # under torchrun: join the other ranks, check that they run the same command line; rank 0 alone prints
        distributed.start()
        distributed.check_command(args.command, sys.argv[1:] if argv is None else [str(a) for a in argv])
        check_args(args)
        with distributed.main_rank_output():
            code = COMMANDS[args.command](args)
        return distributed.agreed_exit_code(code)
    except (UserError, CheckFailed) as exc:
        distributed.print_error(f"pspike {args.command}: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"pspike {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
