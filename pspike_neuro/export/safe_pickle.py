"""Read a torch zip checkpoint without running code from it, OmegaConf objects included.

``torch.load(weights_only=True)`` refuses what PyTorch Lightning pickles besides tensors during real
training (the OmegaConf ``DictConfig`` of the hyper-parameters, ``hparams_type``, callback and loop
states), and ``weights_only=False`` would run whatever the pickle names. This module reads the zip
archive with Python's ``zipfile`` and unpickles ``data.pkl`` with an unpickler whose ``find_class``
admits exactly:

* tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, the storage types (as
  names for ``persistent_load``) and ``torch`` dtypes as values;
* ``collections.OrderedDict``; ``collections.defaultdict``, ``builtins.set`` / ``frozenset`` and
  ``_codecs.encode`` through stand-ins that only build a dict, a set or bytes;
* OmegaConf's containers and nodes (``omegaconf.dictconfig.DictConfig``,
  ``omegaconf.listconfig.ListConfig``, ``omegaconf.nodes.*Node``, ``omegaconf.base.*Metadata``) as
  stand-in classes defined here that only record their state; after unpickling they are rebuilt as
  plain dicts, lists and values (omegaconf is never imported);
* type objects that OmegaConf metadata refers to (``typing.Any``, ``builtins.dict``...) as inert
  names that cannot be called.

Any other global is refused by name, before anything is called: a pickle that would run
``os.system`` stops at ``find_class``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path

import torch

from ..errors import UserError

#: storage class names torch writes in persistent ids -> dtype
STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
               "complex64", "complex128", "double", "float", "half", "long", "int", "short")
#: type objects OmegaConf metadata names (ref_type, object_type, key_type, element_type)
TYPE_REFERENCES = {("typing", n) for n in ("Any", "Dict", "List", "Tuple", "Optional", "Union")} | \
                  {("builtins", n) for n in ("dict", "list", "tuple", "str", "int", "float", "bool", "bytes", "object")}
#: the largest entry of the archive we read into memory (a compressed entry cannot inflate without bound)
MAX_ENTRY_BYTES = 8 << 30


class _TypeRef:
    """A type the pickle names as a value (OmegaConf metadata); it cannot be called."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"the pickle calls {self.name}, which pspike never does")

    def __reduce__(self):
        return (_TypeRef, (self.name,))


class _Recorded:
    """Base of the OmegaConf stand-ins: an object that only keeps the state the pickle gives it."""

    SOURCE = ""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.__dict__["_pickled_state"] = state if isinstance(state, dict) else {}


def _stand_in(module: str, name: str, kind: str) -> type:
    return type(name, (_Recorded,), {"SOURCE": f"{module}.{name}", "KIND": kind})


OMEGACONF = {
    ("omegaconf.dictconfig", "DictConfig"): "dict",
    ("omegaconf.listconfig", "ListConfig"): "list",
    **{("omegaconf.nodes", n): "value" for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode",
                                                 "BytesNode", "PathNode", "ValueNode")},
    ("omegaconf.base", "Metadata"): "meta",
    ("omegaconf.base", "ContainerMetadata"): "meta",
}
STAND_INS = {key: _stand_in(*key, kind) for key, kind in OMEGACONF.items()}


def _defaultdict(*args):
    return {}  # the default factory is dropped: the result is a plain dict filled by the pickle's items


def _set(items=()):
    return set(items)


def _frozenset(items=()):
    return frozenset(items)


def _codecs_encode(text, encoding="latin1"):
    """Protocol-2 pickles write bytes as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode with other arguments than a string and latin1")
    return text.encode("latin1")


FUNCTIONS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): _defaultdict,
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a torch zip archive, admitting only the globals listed above."""

    def __init__(self, data: bytes, read_record):
        super().__init__(io.BytesIO(data))
        self._read_record = read_record
        self._storages: dict = {}

    def find_class(self, module, name):
        # protocol-2 pickles name Python 2 modules (``__builtin__``); map them as pickle itself does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in FUNCTIONS:
            return FUNCTIONS[key]
        if key in STAND_INS:
            return STAND_INS[key]
        if key in TYPE_REFERENCES:
            return _TypeRef(f"{module}.{name}")
        if module == "torch" and name in STORAGE_DTYPES:
            return _TypeRef(f"torch.{name}")
        if module == "torch" and name in DTYPE_NAMES:
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"it pickles {module}.{name}, which pspike never unpickles (it could run code)")

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unknown persistent id {str(saved_id)[:60]}")
        _, storage_type, key, _location, numel = saved_id
        name = storage_type.name.rsplit(".", 1)[-1] if isinstance(storage_type, _TypeRef) else ""
        if name not in STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r}")
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError("malformed storage reference")
        dtype = STORAGE_DTYPES[name]
        if key not in self._storages:
            raw = self._read_record(key)
            size = torch._utils._element_size(dtype)
            nbytes = numel if name == "UntypedStorage" else numel * size
            if len(raw) != nbytes:
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} bytes, its reference says {nbytes}")
            untyped = torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage() if raw else \
                torch.UntypedStorage(0)
            self._storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        return self._storages[key]


def _plain(obj, memo: dict):
    """``obj`` with every OmegaConf stand-in rebuilt as a plain dict, list or value."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, type) and issubclass(obj, _Recorded):
        return obj.SOURCE  # a class named as a value (Lightning's ``hparams_type``)
    if isinstance(obj, _TypeRef):
        return obj.name
    if isinstance(obj, _Recorded):
        state = obj.__dict__.get("_pickled_state", {})
        content = state.get("_content", state.get("_val"))
        if obj.KIND == "meta":
            out = None
        elif obj.KIND == "value":
            out = _plain(state.get("_val"), memo)
        elif obj.KIND == "dict":
            out = {} if isinstance(content, dict) else _plain(content, memo)
            memo[id(obj)] = out
            if isinstance(content, dict):
                out.update({_plain(k, memo): _plain(v, memo) for k, v in content.items()})
            return out
        else:
            out = [] if isinstance(content, list) else _plain(content, memo)
            memo[id(obj)] = out
            if isinstance(content, list):
                out.extend(_plain(v, memo) for v in content)
            return out
        memo[id(obj)] = out
        return out
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        memo[id(obj)] = out
        out.update({_plain(k, memo): _plain(v, memo) for k, v in obj.items()})
        return out
    if isinstance(obj, list):
        out = []
        memo[id(obj)] = out
        out.extend(_plain(v, memo) for v in obj)
        return out
    if isinstance(obj, tuple):
        return tuple(_plain(v, memo) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(_plain(v, memo) for v in obj)
    return obj


def load_torch_zip(path) -> object:
    """The object of a torch zip checkpoint, with tensors, plain containers and values only.

    Raises :class:`UserError` (one line) for a file that is not a torch zip archive, a legacy
    pickle, a big-endian archive, or a pickle that names anything outside the admitted globals."""
    path = Path(path)
    what = f"{path}"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{what}: not a torch zip checkpoint ({exc}); legacy (pre-1.6) torch pickles are not read, "
                        "re-save the file with a current torch") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"{what}: not a torch zip checkpoint (expected one <name>/data.pkl in the archive, "
                            f"found {len(pickles)})")
        prefix = pickles[0][: -len("data.pkl")]

        def read(name: str) -> bytes:
            info = infos.get(prefix + name)
            if info is None:
                raise pickle.UnpicklingError(f"the archive has no record {name}")
            if info.file_size > MAX_ENTRY_BYTES:
                raise pickle.UnpicklingError(f"record {name} is {info.file_size} bytes")
            return archive.read(info)

        order = infos.get(prefix + "byteorder")
        if order is not None and archive.read(order).decode("ascii", "replace").strip() != sys.byteorder:
            raise UserError(f"{what}: tensors stored in {archive.read(order).decode('ascii', 'replace')} byte order; "
                            f"this machine is {sys.byteorder}-endian")
        try:
            data = read("data.pkl")
            obj = RestrictedUnpickler(data, lambda key: read(f"data/{key}")).load()
        except pickle.UnpicklingError as exc:
            raise UserError(f"{what}: refused: {exc}") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError,
                zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise UserError(f"{what}: damaged checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    return _plain(obj, {})
