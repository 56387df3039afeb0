"""Node types of the netlist, one module each, registered by name (``base.REGISTRY``).

Importing this package registers every type; ``node_type(name)`` finds one and refuses an unknown
name. ``docs/netlist-format.md``'s tables come from the records (``schema_markdown``).
"""

from . import (  # noqa: F401  (each module registers its types)
    clamp_fuse,
    count_input,
    csilif_neuron,
    cuba_lif,
    delay,
    graded_input,
    leaky_readout,
    li,
    lif,
    output,
    readout_integrator,
    rf_neuron,
    silif_neuron,
    spike_input,
    ssm_gelu_neuron,
    ssm_neuron,
    synapses,
    threshold,
)
from .base import (
    BINARY,
    OP_FIELDS,
    REGISTRY,
    STATE,
    Activity,
    Field,
    FloatNode,
    Format,
    NodeError,
    NodeType,
    OpCounts,
    QuantContext,
    RunContext,
    node_type,
)

__all__ = ["BINARY", "OP_FIELDS", "REGISTRY", "STATE", "Activity", "Field", "FloatNode", "Format", "NodeError", "NodeType",
           "OpCounts", "QuantContext", "RunContext", "node_type", "schema_markdown"]


def schema_markdown() -> str:
    """The field tables of docs/netlist-format.md, generated from the declarations."""
    out = []
    for name, cls in REGISTRY.items():
        out.append(f"### `{name}`\n\n{' '.join(cls.DOC_EQUATION.split())}\n")
        out.append(f"In ports: {', '.join(cls.IN_PORTS) or 'none'}; out ports: {', '.join(cls.OUT_PORTS) or 'none'}.\n")
        out.append("| field | type | range | meaning |\n|---|---|---|---|")
        for f in cls.FIELDS:
            out.append(f"| `{f.name}` | {f.describe_type()} | {f.describe_range()} | {f.doc} |")
        out.append("")
    return "\n".join(out)
