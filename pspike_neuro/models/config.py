"""Model configuration: one dataclass, validated once, stored in every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import UserError
from .ssm import DISCRETIZATIONS, INITS

ACTIVATIONS = ("identity", "relu", "gelu")
NORMS = ("batch", "layer", "none")
SAMPLERS = ("stochastic", "lif")
INPUT_KINDS = ("real", "tokens")
BRANCH_ORDERS = ("reversed", "same")
PARAM_DTYPES = ("float32", "float64")


def check_sizes(cfg, limits: dict) -> None:
    """Sizes must be integers in [1, limit]: a config from someone else's file must not make us
    allocate terabytes before the tensors are compared."""
    for name, limit in limits.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise UserError(f"model config: {name} must be an integer in [1, {limit}], got {value!r}")


def check_types(cfg, reals=(), flags=()) -> None:
    """Reals must be finite numbers and flags true booleans: a flag read as ``bool("no")`` or a
    NaN in someone else's file would build a different network without a word."""
    import math

    for name in reals:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"model config: {name} must be a finite number, got {value!r}")
    for name in flags:
        value = getattr(cfg, name)
        if not isinstance(value, bool):
            raise UserError(f"model config: {name} must be true or false, got {value!r}")


class ConfigDict:
    """The plain-dict round trip of a model config dataclass (what a checkpoint stores); unknown
    fields in someone else's file are refused by name instead of being dropped."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


@dataclass
class ModelConfig(ConfigDict):
    """Every knob of a P-SpikeSSM network (DESIGN §4)."""

    d_input: int = 1
    n_classes: int = 10
    input_kind: str = "real"
    d_model: int = 128
    d_state: int = 32
    n_layers: int = 4
    init: str = "legs"
    discretization: str = "zoh"
    dt_min: float = 0.001
    dt_max: float = 0.1
    share_ab: bool = False
    phi: str = "identity"
    psi: str = "relu"
    norm: str = "batch"
    prenorm: bool = True
    residual: bool = True
    dropout: float = 0.0
    bidirectional: bool = False
    sampler: str = "stochastic"
    lif_beta: float = 0.9
    lif_threshold: float = 1.0
    # the P-SpikeSSM authors' forms (pspike import of their checkpoints; float only unless noted):
    two_sided: bool = False         # each SSM also has an anti-causal kernel (their layer-level bidirectional)
    branch_order: str = "reversed"  # bidirectional branch on the time-reversed input, or "same": theirs
    shared_uniforms: bool = False   # output samplers reuse the input sampler's uniforms (their LRA blocks)
    param_dtype: str = "float32"    # float64: parameters kept at full precision (imported conversions)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def choose(name, value, options):
            if value not in options:
                raise UserError(f"model config: {name}={value!r} is not one of {', '.join(options)}")

        choose("input_kind", self.input_kind, INPUT_KINDS)
        choose("init", self.init, INITS)
        choose("discretization", self.discretization, DISCRETIZATIONS)
        choose("phi", self.phi, ACTIVATIONS)
        choose("psi", self.psi, ACTIVATIONS)
        choose("norm", self.norm, NORMS)
        choose("sampler", self.sampler, SAMPLERS)
        choose("branch_order", self.branch_order, BRANCH_ORDERS)
        choose("param_dtype", self.param_dtype, PARAM_DTYPES)
        check_sizes(self, {"d_input": 1 << 20, "n_classes": 1 << 16, "d_model": 1 << 14, "n_layers": 256,
                           "d_state": 1 << 12})
        check_types(self, reals=("dt_min", "dt_max", "dropout", "lif_beta", "lif_threshold"),
                    flags=("share_ab", "prenorm", "residual", "bidirectional", "two_sided", "shared_uniforms"))
        if not 0.0 <= self.lif_beta <= 1.0 or self.lif_threshold <= 0:
            raise UserError(f"model config: need 0 <= lif_beta <= 1 and lif_threshold > 0, got "
                            f"{self.lif_beta}, {self.lif_threshold}")
        if self.d_state < 2 or self.d_state % 2:
            raise UserError(f"model config: d_state must be an even integer >= 2, got {self.d_state}")
        if not 0 < self.dt_min <= self.dt_max:
            raise UserError(f"model config: need 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model config: dropout must be in [0, 1), got {self.dropout}")



@dataclass
class Preset:
    description: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


#: Named model sizes. Task-dependent fields (d_input, n_classes, input_kind) come from the task.
PRESETS: dict[str, Preset] = {
    "small": Preset(
        "4 layers, H=128, N=32, pre-BatchNorm, residual; the sdigits/psdigits default",
        model=dict(d_model=128, d_state=32, n_layers=4),
        train=dict(epochs=50),
    ),
    "tiny": Preset(
        "2 layers, H=32, N=8; for smoke tests",
        model=dict(d_model=32, d_state=8, n_layers=2),
        train=dict(epochs=2),
    ),
    "psmnist": Preset(
        "the authors' psMNIST configuration: 2 layers, H=400, N=64, unidirectional, no residual, "
        "pre-BatchNorm, final BatchNorm, mean-pool decoder, dropout 0.1, shared A/B (n_ssm=1), bilinear "
        "discretization, GELU after the SSM and the mixer, batch 64, lr 5e-4, wd 0.01; causal and diagonal "
        "(theirs: two-sided DPLR kernel; docs/import.md)",
        model=dict(d_model=400, d_state=64, n_layers=2, residual=False, prenorm=True, norm="batch",
                   dropout=0.1, share_ab=True, psi="gelu", phi="gelu", discretization="bilinear"),
        train=dict(batch_size=64, lr=5e-4, weight_decay=0.01),
    ),
    "listops": Preset(
        "the authors' ListOps size, made causal: 4 layers, H=128, N=16, post-BatchNorm, residual, "
        "shared A/B, batch 32, lr 8e-4, wd 0.01",
        model=dict(d_model=128, d_state=16, n_layers=4, prenorm=False, norm="batch", share_ab=True),
        train=dict(batch_size=32, lr=8e-4, weight_decay=0.01),
    ),
    "lra-image": Preset(
        "the authors' LRA-Image size, made causal: 6 layers, H=512, N=64, post-norm, residual, "
        "dropout 0.1, shared A/B (the authors use LayerNorm, which does not deploy; BatchNorm here)",
        model=dict(d_model=512, d_state=64, n_layers=6, prenorm=False, norm="batch", dropout=0.1,
                   share_ab=True),
        train=dict(batch_size=50, lr=5e-3, weight_decay=0.01),
    ),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
