"""Property: any single edit of a netlist's content (a node's scalar or array field, a float
parameter, a /meta entry, an edge) is refused in one line naming the file, never read as another
network. Out-of-range values and wrong types are named by node and field; edits that stay in range
are caught by the content checksum. (Moved here from tests/test_netlist.py and widened.)"""

import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pspike_neuro.errors import UserError
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.nodes import REGISTRY as NODE_TYPES
from tests.netlist_edit import crafted

from .conftest import Watchdog

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _refused(path) -> str:
    with Watchdog(), pytest.raises(UserError) as info:
        read_netlist(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"netlist {path}")
    return message


def _copy(robust_net, tmp_path):
    path = tmp_path / "edit.net"
    shutil.copyfile(robust_net, path)
    return path


def _fields(type_name, kind):
    return [f for f in NODE_TYPES[type_name].FIELDS if (f.kind == "array") == (kind == "array")]


@FUZZ
@given(data=st.data())
def test_any_scalar_field_edit_is_refused(robust_net, tmp_path, data):
    path = _copy(robust_net, tmp_path)
    with crafted(path) as f:
        name = data.draw(st.sampled_from(sorted(f["nodes"])), label="node")
        g = f["nodes"][name]
        fld = data.draw(st.sampled_from(_fields(g.attrs["type"], "scalar")), label="field")
        old = g.attrs[fld.name]
        if fld.kind == "int":
            lo, hi = fld.lo, fld.hi
            out_of_range = st.one_of(st.integers(hi + 1, hi + 2**40), st.integers(lo - 2**40, lo - 1))
            new = data.draw(st.one_of(out_of_range, st.integers(lo, hi), st.text(max_size=4), st.floats(),
                                      st.booleans()), label="value")
        elif fld.kind == "bool":
            new = data.draw(st.one_of(st.integers(-3, 3), st.text(max_size=4), st.booleans()), label="value")
        else:
            new = data.draw(st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(["identity", "relu"])),
                            label="value")
        assume(not (type(new) is type(old.item() if hasattr(old, "item") else old) and new == old))
        g.attrs[fld.name] = new
    message = _refused(path)
    is_int = isinstance(new, (int, np.integer)) and not isinstance(new, bool)
    if fld.kind == "int" and is_int and not fld.lo <= new <= fld.hi:
        assert f"{name}" in message and fld.name in message and "outside" in message
    else:   # a value of the wrong type is named with its node; one in range changes what the checksum covers
        # (or a size another field or an edge must agree with, named with the node)
        assert name in message or message.endswith("content checksum mismatch (the file was modified or corrupted "
                                                   "after it was written)"), message


@FUZZ
@given(data=st.data())
def test_any_array_element_edit_is_refused(robust_net, tmp_path, data):
    path = _copy(robust_net, tmp_path)
    with crafted(path) as f:
        name = data.draw(st.sampled_from(sorted(f["nodes"])), label="node")
        g = f["nodes"][name]
        fields = [fld for fld in _fields(g.attrs["type"], "array") if g[fld.name].size]
        assume(fields)
        fld = data.draw(st.sampled_from(fields), label="field")
        arr = g[fld.name][()]
        index = data.draw(st.integers(0, arr.size - 1), label="index")
        info = np.iinfo(arr.dtype)
        new = data.draw(st.integers(int(info.min), int(info.max)), label="value")
        assume(new != arr.reshape(-1)[index])
        arr.reshape(-1)[index] = new
        g[fld.name][...] = arr
    message = _refused(path)
    if not fld.lo <= new <= fld.hi:
        assert name in message and fld.name in message


@FUZZ
@given(data=st.data())
def test_any_float_parameter_meta_or_edge_edit_is_refused(robust_net, tmp_path, data):
    path = _copy(robust_net, tmp_path)
    where = data.draw(st.sampled_from(["float", "meta", "edge"]), label="where")
    with crafted(path) as f:
        if where == "float":
            name = data.draw(st.sampled_from(sorted(n for n in f["nodes"] if "float" in f["nodes"][n])))
            g = f["nodes"][name]["float"]
            key = data.draw(st.sampled_from(sorted(g)), label="parameter")
            arr = g[key][()]
            assume(arr.size)
            index = data.draw(st.integers(0, arr.size - 1))
            new = data.draw(st.floats(allow_nan=True, allow_infinity=True), label="value")
            assume(not arr.reshape(-1)[index] == new)
            arr.reshape(-1)[index] = new
            g[key][...] = arr
        elif where == "meta":
            key = data.draw(st.sampled_from(sorted(k for k in f["meta"].attrs if k != "content_sha256")), label="key")
            old = f["meta"].attrs[key]
            new = data.draw(st.one_of(st.integers(-2**40, 2**40), st.text(max_size=8), st.floats(),
                                      st.just("{}"), st.just('{"d_model": 8}')), label="value")
            assume(str(new) != str(old.decode() if isinstance(old, bytes) else old))
            f["meta"].attrs[key] = new
        else:
            col = data.draw(st.sampled_from(["src", "dst", "src_port", "dst_port"]), label="column")
            values = [v.decode() for v in f["edges"][col][()]]
            row = data.draw(st.integers(0, len(values) - 1), label="row")
            choices = sorted(set(f["nodes"]) | {"in", "out", "residual", "mixer", "ghost"})
            new = data.draw(st.sampled_from(choices), label="value")
            assume(new != values[row])
            values[row] = new
            del f["edges"][col]
            f["edges"].create_dataset(col, data=np.array(values, dtype="S"))
    _refused(path)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_schema_violations_give_only_clear_errors(robust_net, tmp_path, data):
    """Replace a random array field by a wrong dtype, shape or out-of-range value; delete nodes/edges."""
    path = _copy(robust_net, tmp_path)
    with crafted(path) as f:
        node = data.draw(st.sampled_from(sorted(f["nodes"].keys())))
        g = f["nodes"][node]
        arrays = sorted(k for k in g.keys() if isinstance(g[k], h5py.Dataset))
        action = data.draw(st.sampled_from(["dtype", "shape", "range", "drop_node", "drop_edge"]
                                           if arrays else ["drop_node", "drop_edge"]))
        if action in ("dtype", "shape", "range"):
            key = data.draw(st.sampled_from(arrays))
            old = g[key][()]
            del g[key]
            if action == "dtype":
                g.create_dataset(key, data=old.astype(np.float64))
            elif action == "shape":
                g.create_dataset(key, data=np.zeros((old.size + 1,), old.dtype))
            else:
                bad = old.copy().reshape(-1)
                if bad.size:
                    bad[0] = np.iinfo(old.dtype).max
                g.create_dataset(key, data=bad.reshape(old.shape))
        elif action == "drop_node":
            del f["nodes"][node]
        else:
            k = data.draw(st.integers(0, f["edges/src"].shape[0] - 1))
            for col in ("src", "dst", "src_port", "dst_port"):
                vals = list(f["edges"][col][()])
                del vals[k]
                del f["edges"][col]
                f["edges"].create_dataset(col, data=np.array(vals, dtype="S"))
    message = _refused(path)
    if action in ("dtype", "shape", "range"):   # an array's dtype's maximum is outside every declared range but
        assert f"node {node}" in message and key in message   # indptr's, which must start at 0: named either way
