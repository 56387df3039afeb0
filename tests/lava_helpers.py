"""Helpers shared by the Lava tests."""

from __future__ import annotations

import numpy as np


def rf_trajectory(steps: int, drive_re: int, drive_im: int, **rf_args):
    """Run ``lava.proc.rf``'s fixed_pt RF neuron (one neuron) for ``steps`` steps with constant
    integer drives; returns the process's (sin_decay, cos_decay) and its (real, imag) state after
    every step."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.rf.process import RF

    rf = RF(shape=(1,), **rf_args)
    decays = int(rf.sin_decay.init), int(rf.cos_decay.init)
    src_re = RingBuffer(data=np.full((1, steps), drive_re, np.int32))
    src_im = RingBuffer(data=np.full((1, steps), drive_im, np.int32))
    src_re.s_out.connect(rf.a_real_in)
    src_im.s_out.connect(rf.a_imag_in)
    states = []
    try:
        for _ in range(steps):
            rf.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            states.append((int(rf.real.get()[0]), int(rf.imag.get()[0])))
    finally:
        rf.stop()
    return decays, states


def assert_same_run(got, want, n_layers: int) -> None:
    """Two simulation results (``graph.RunResult``, e.g. Lava and the reference) are identical: every
    node's output (spikes, graded streams), every step record (input-sampler spikes, states when
    recorded), the scores and the saturation counts."""
    assert len(got.layers) == len(want.layers) == n_layers
    assert got.outputs.keys() == want.outputs.keys()
    for name in want.outputs:
        np.testing.assert_array_equal(got.outputs[name], want.outputs[name], err_msg=name)
    for name, rec in want.records.items():
        for key, value in rec.items():
            np.testing.assert_array_equal(got.records[name][key], value, err_msg=f"{name}.{key}")
    np.testing.assert_array_equal(got.logits, want.logits)
    assert got.saturation == want.saturation
