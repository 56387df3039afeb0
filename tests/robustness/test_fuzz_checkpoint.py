"""Property-based damage to checkpoints: only one-line errors (exit 2), never a crash, a hang, or a
model with other weights loaded silently (the tensor checksum sees edited bytes)."""

import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import config_digest, load_checkpoint, save_checkpoint, state_digest
from pspike_neuro.models import SNN, SNNConfig

from .conftest import Watchdog, assert_one_line_error, run_cli

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _state_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@FUZZ
@given(data=st.data())
def test_truncated_and_bit_flipped_checkpoints(small_checkpoint, tmp_path, data):
    raw = bytearray(small_checkpoint.path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 16))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / "fuzz.pt"
    path.write_bytes(bytes(raw))
    with Watchdog():
        try:
            ckpt = load_checkpoint(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("checkpoint ")
            return
    # read back: the flips hit bytes without content, so the model is exactly the original
    assert _state_equal(ckpt.model.state_dict(), small_checkpoint.model.state_dict())


def _resave(src, dst, mutate, rehash=True):
    payload = torch.load(src, weights_only=True)
    mutate(payload)
    if rehash and isinstance(payload.get("state_dict"), dict) and \
            all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        payload["state_sha256"] = state_digest(payload["state_dict"])  # so the specific check speaks
    if rehash and isinstance(payload.get("model_config"), dict):
        payload["config_sha256"] = config_digest(payload["model_config"])
    torch.save(payload, dst)
    return payload


@pytest.fixture(scope="module")
def snn_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("snn") / "snn.pt"
    save_checkpoint(path, SNN(SNNConfig(kind="csilif", d_input=32, d_hidden=4)).eval(), task="sdigits-spikes")
    return load_checkpoint(path)


#: values no field of a checkpoint should be able to smuggle in
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                                st.integers(), max_size=1))


def _junk_tensor(ref: torch.Tensor, data) -> torch.Tensor:
    kind = data.draw(st.sampled_from(["dtype", "shape", "scalar", "nonfinite", "empty"]))
    if kind == "dtype":
        return ref.to(data.draw(st.sampled_from([torch.float64, torch.float16, torch.int32, torch.int64, torch.bool,
                                                 torch.complex64])))
    if kind == "shape":
        return torch.zeros(*ref.shape, data.draw(st.integers(1, 3)), dtype=ref.dtype)
    if kind == "scalar":
        return torch.tensor(1, dtype=ref.dtype)
    if kind == "empty":
        return torch.zeros(0, dtype=ref.dtype)
    bad = ref.clone().float() if not ref.is_floating_point() else ref.clone()
    bad.view(-1)[data.draw(st.integers(0, max(0, bad.numel() - 1)))] = data.draw(
        st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    return bad.to(ref.dtype) if ref.is_floating_point() else bad


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_edited_fields_and_tensors_are_refused_or_read_exactly(small_checkpoint, snn_checkpoint, tmp_path, data):
    """Any field of the payload, any config entry or any tensor replaced by junk (with or without the
    checksums recomputed): refused in one line, or read back as exactly what the file says."""
    source = data.draw(st.sampled_from([small_checkpoint, snn_checkpoint]))
    original = torch.load(source.path, weights_only=True)
    where = data.draw(st.sampled_from(["config", "payload", "tensor", "drop"]))

    def mutate(p):
        if where == "config":
            p["model_config"][data.draw(st.sampled_from(sorted(p["model_config"])))] = data.draw(JUNK)
        elif where == "payload":
            p[data.draw(st.sampled_from(sorted(p)))] = data.draw(JUNK)
        elif where == "tensor":
            name = data.draw(st.sampled_from(sorted(p["state_dict"])))
            p["state_dict"][name] = _junk_tensor(p["state_dict"][name], data)
        else:
            p.pop(data.draw(st.sampled_from(sorted(p))))

    rehash = data.draw(st.booleans())
    path = tmp_path / "edit.pt"
    written = _resave(source.path, path, mutate, rehash=rehash)
    with Watchdog():
        try:
            ckpt = load_checkpoint(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"checkpoint {path}: ")
            return
    # read: the model is what the file holds, and without recomputed checksums nothing changed
    assert _state_equal(ckpt.model.state_dict(), written["state_dict"])
    assert ckpt.config.to_dict() == written["model_config"]
    if not rehash:
        assert _state_equal(written["state_dict"], original["state_dict"])
        assert written["model_config"] == original["model_config"]


def _poke(name, value):
    def mutate(p):
        t = p["state_dict"][name].clone()
        t.view(-1)[0] = value
        p["state_dict"][name] = t
    return mutate


MUTATIONS = {
    "float64 tensor": (lambda p: p["state_dict"].__setitem__("readout.weight", p["state_dict"]["readout.weight"].double()),
                       r"tensor readout.weight has dtype float64, the model needs float32$"),
    "integer tensor": (lambda p: p["state_dict"].__setitem__("readout.weight", torch.zeros(10, 8, dtype=torch.int64)),
                       r"tensor readout.weight has dtype int64, the model needs float32$"),
    "transposed tensor": (lambda p: p["state_dict"].__setitem__("readout.weight", p["state_dict"]["readout.weight"].T),
                          r"tensor readout.weight has shape \(8, 10\), model_config needs \(10, 8\)$"),
    "scalar for a tensor": (lambda p: p["state_dict"].__setitem__("readout.bias", torch.tensor(1.0)),
                            r"tensor readout.bias has shape \(\), model_config needs \(10,\)$"),
    "NaN weight": (_poke("blocks.0.mixer.weight", float("nan")), r"tensor blocks.0.mixer.weight has 1 NaN or infinite value"),
    "infinite weight": (_poke("blocks.1.a_in", float("inf")), r"tensor blocks.1.a_in has 1 NaN or infinite value"),
    "missing tensor": (lambda p: p["state_dict"].pop("encoder.weight"),
                       r"missing tensor\(s\) encoder.weight; the file does not match its model_config$"),
    "extra tensor": (lambda p: p["state_dict"].__setitem__("blocks.9.x", torch.zeros(1)),
                     r"unexpected tensor\(s\) blocks.9.x not in the model"),
    "state dict not a mapping": (lambda p: p.__setitem__("state_dict", [1, 2]), "not a mapping of tensors"),
    "tensor replaced by a number": (lambda p: p["state_dict"].__setitem__("readout.bias", 3), "not a mapping of tensors"),
    "unknown model type": (lambda p: p.__setitem__("model_type", "transformer"),
                           r"unknown model_type 'transformer'; known: pspike"),
    "config not a mapping": (lambda p: p.__setitem__("model_config", "big"), "model_config is not a mapping"),
    "config size as string": (lambda p: p["model_config"].__setitem__("d_model", "8"), "d_model must be an integer"),
    "config size huge": (lambda p: p["model_config"].__setitem__("d_model", 10**9),
                         r"model config: d_model must be an integer in \[1, 16384\], got 1000000000$"),
    "config size zero": (lambda p: p["model_config"].__setitem__("n_layers", 0),
                         r"model config: n_layers must be an integer in \[1, 256\], got 0$"),
    "config unknown field": (lambda p: p["model_config"].__setitem__("colour", "red"),
                             r"model config: unknown field\(s\) colour$"),
    "config flag as string": (lambda p: p["model_config"].__setitem__("residual", "no"), "residual must be true or false"),
    "config NaN real": (lambda p: p["model_config"].__setitem__("dt_max", float("nan")), "dt_max must be a finite"),
    "config LIF decay above 1": (lambda p: p["model_config"].__setitem__("lif_beta", 1.5),
                                 r"model config: need 0 <= lif_beta <= 1 and lif_threshold > 0, got 1.5, 1.0$"),
    "task options not a mapping": (lambda p: p.__setitem__("task_options", [1, 2]), "task_options must be a mapping"),
    "config bad choice": (lambda p: p["model_config"].__setitem__("phi", "tanh"),
                          r"model config: phi='tanh' is not one of identity, relu, gelu$"),
    "version as string": (lambda p: p.__setitem__("format_version", "1"), "invalid format_version"),
    "version zero": (lambda p: p.__setitem__("format_version", 0), "invalid format_version"),
    "not a dict": (lambda p: (p.clear(), p.__setitem__("format", None))[0], "not a pspike-neuro checkpoint"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_damaged_payloads_are_named(small_checkpoint, tmp_path, name):
    mutate, message = MUTATIONS[name]
    path = tmp_path / "mut.pt"
    _resave(small_checkpoint.path, path, mutate)
    with Watchdog(), pytest.raises(UserError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_edited_weights_fail_the_checksum(small_checkpoint, tmp_path):
    path = tmp_path / "edited.pt"
    _resave(small_checkpoint.path, path, _poke("readout.bias", 0.125), rehash=False)
    with pytest.raises(UserError, match="tensor checksum mismatch"):
        load_checkpoint(path)


def test_edited_config_fails_the_checksum(small_checkpoint, tmp_path):
    """``residual`` changes the network but no tensor: only the config checksum can see the edit."""
    path = tmp_path / "edited.pt"
    _resave(small_checkpoint.path, path, lambda p: p["model_config"].__setitem__("residual", False), rehash=False)
    with pytest.raises(UserError, match="model_config checksum mismatch"):
        load_checkpoint(path)


def test_checkpoints_without_a_checksum_still_load(small_checkpoint, tmp_path):
    path = tmp_path / "old.pt"
    _resave(small_checkpoint.path, path, lambda p: (p.pop("state_sha256"), p.pop("config_sha256")), rehash=False)
    assert _state_equal(load_checkpoint(path).model.state_dict(), small_checkpoint.model.state_dict())


@pytest.mark.parametrize("name", ["NaN weight", "config size huge"])
def test_cli_gives_one_line_and_exit_2(small_checkpoint, tmp_path, name):
    path = tmp_path / "mut.pt"
    _resave(small_checkpoint.path, path, MUTATIONS[name][0])
    out_net = tmp_path / "out.net"
    code, out, err = run_cli("export", path, "-o", out_net)
    assert code == 2 and not out_net.exists()
    assert_one_line_error(err, "export")


def test_a_directory_or_a_netlist_given_as_checkpoint(small_checkpoint, robust_net, tmp_path):
    shutil.copyfile(robust_net, tmp_path / "model.pt")
    for path, message in ((tmp_path, "is a directory"), (tmp_path / "model.pt", "not a pspike-neuro checkpoint")):
        with pytest.raises(UserError, match=message):
            load_checkpoint(path)
