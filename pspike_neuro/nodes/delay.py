"""``DelayNode``: NIR's ``Delay``, each channel's input ``delay`` steps later (zeros before):
``out_t = in_{t - delay}``; ``delay = round(tau / dt)`` at import, refused unless a whole number of
steps. Values pass unchanged, spikes stay spikes (the output has its input's format).
"""

from __future__ import annotations

import numpy as np

from .base import A, Activity, I, NodeType, OpCounts, QuantContext, register

MAX_DELAY = 1 << 16


@register
class DelayNode(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = "Delay: ``out_t = in_{t - delay}`` per channel, zeros before (NIR Delay)."
    FLOATS = ("delay",)
    FIELDS = (I("n", 1, 2**20, "channels"),
              A("delay", "int32", ("n",), 0, MAX_DELAY, "steps each channel waits"))

    def int_init(self, batch):
        depth = int(np.asarray(self.delay, np.int64).max(initial=0)) + 1  # the checked field, never the float
        return np.zeros((batch, depth, self.n), np.int64), 0

    def int_step(self, state, inputs, t, ctx):
        return _delay(np.asarray(self.delay, np.int64), state, np.asarray(inputs["in"], np.int64))

    def float_init(self, batch):
        depth = int(np.asarray(self.floats["delay"], np.int64).max(initial=0)) + 1
        return np.zeros((batch, depth, self.n)), 0

    def float_step(self, state, inputs, t, ctx):
        return _delay(np.asarray(self.floats["delay"], np.int64), state, np.asarray(inputs["in"], np.float64))

    @classmethod
    def out_format(cls, q: QuantContext):
        return q.in_formats["in"]

    @classmethod
    def quantize(cls, q: QuantContext) -> "DelayNode":
        return cls(q.node.name, dict(n=q.node.n, delay=np.asarray(q.node.floats["delay"], np.int64)),
                   dict(q.node.floats))

    def ops(self, act: Activity) -> OpCounts:
        return OpCounts(neuron_updates=act.steps * self.n) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(neuron_updates=steps * self.n, graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n


def _delay(delays, state, x):
    """A ring buffer of the last ``depth`` inputs; channel ``i`` reads the one ``delay_i`` steps old."""
    ring, head = state
    depth = ring.shape[1]
    ring[:, head] = x
    out = ring[:, (head - delays) % depth, np.arange(ring.shape[2])]
    return {"out": out.copy()}, (ring, (head + 1) % depth), {}
