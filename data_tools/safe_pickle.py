"""Restricted unpicklers for untrusted data: only the globals the supported formats need are admitted, and torch /
torch_geometric objects are rebuilt as numpy arrays and plain dicts (no torch code runs, nothing is imported).

* :func:`loads_plain`: builtins only (dict, list, str, numbers, None) plus numpy scalars/arrays (PubChemQCR records).
* :func:`loads_pyg`: a pickled ``torch_geometric.data.Data`` (PyG 1.x or 2.x, tensors as pickled by ``pickle.dumps``)
  -> ``dict`` of field name -> numpy array or Python scalar (OC20/OC22 LMDB values).

Any other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy as np

from sciml.errors import DataError


class UnsafePickleError(DataError):
    """The pickle references a global outside the allow-list."""


class _Record:
    """Stand-in for an allowed container class (PyG Data, storages): keeps the pickled state as a dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict state, slots state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {"value": state}


class _Marker:
    """Stand-in for a class that only appears as a value (e.g. ``DataEdgeAttr``). It takes no state: a pickle that
    BUILDs one (e.g. ``torch.Tensor()`` with ``__array_interface__`` naming a raw address) is refused."""

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refusing to set state on a {type(self).__name__} stand-in")


class _StorageType:
    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)


_STORAGE_DTYPES = {"UntypedStorage": "u1", "ByteStorage": "u1", "CharStorage": "i1", "ShortStorage": "<i2",
                   "IntStorage": "<i4", "LongStorage": "<i8", "HalfStorage": "<f2", "FloatStorage": "<f4",
                   "DoubleStorage": "<f8", "BoolStorage": "?", "BFloat16Storage": "<u2"}
_TORCH_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "int8": "i1", "uint8": "u1", "int16": "<i2",
                 "int32": "<i4", "int64": "<i8", "bool": "?", "half": "<f2", "float": "<f4", "double": "<f8",
                 "long": "<i8", "int": "<i4", "short": "<i2"}


class _TorchDtype:
    def __init__(self, name: str):
        self.np = np.dtype(_TORCH_DTYPES[name])


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, _Record)) or base is not object:
        raise UnsafePickleError(f"copyreg._reconstructor called with {cls!r}, {base!r}")
    return cls.__new__(cls)


try:
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; only latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


_NUMPY: dict[tuple[str, str], Any] = {(m, n): getattr(_multiarray, n) for m in ("numpy.core.multiarray",
                                      "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
_NUMPY.update({("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode})


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns objects from ``allowed``; no persistent ids."""

    def __init__(self, file: io.BytesIO, allowed: dict[tuple[str, str], Any]):
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to unpickle global {module}.{name} (not in the allow-list)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to unpickle a persistent id")


def loads_plain(data: bytes) -> Any:
    """Unpickle builtins and numpy values only."""
    return RestrictedUnpickler(io.BytesIO(data), _NUMPY).load()


class _StorageUnpickler(RestrictedUnpickler):
    def __init__(self, file: io.BytesIO, allowed: dict[tuple[str, str], Any]):
        super().__init__(file, allowed)
        self.storages: dict[str, _StorageType] = {}

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"unexpected persistent id {pid!r:.80}")
        self.storages[str(pid[2])] = pid[1]
        return ("storage-ref", str(pid[2]))


def _load_storage_bytes(data: bytes) -> np.ndarray:
    """Decode ``torch.storage._load_from_bytes`` payloads (legacy ``torch.save`` of one storage) to a numpy array."""
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info: plain values
        RestrictedUnpickler(f, {}).load()
    allowed = {("torch", name): _StorageType(dt) for name, dt in _STORAGE_DTYPES.items()}
    allowed.update({("torch.storage", name): _StorageType(dt) for name, dt in _STORAGE_DTYPES.items()})
    unp = _StorageUnpickler(f, allowed)
    root = unp.load()
    keys = RestrictedUnpickler(f, {}).load()
    arrays = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = unp.storages[str(key)].dtype
        arrays[str(key)] = np.frombuffer(f.read(numel * dtype.itemsize), dtype=dtype)
    if not (isinstance(root, tuple) and root[0] == "storage-ref"):
        raise UnsafePickleError("tensor storage payload does not hold a storage")
    return arrays[root[1]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *args: Any) -> np.ndarray:
    """A fresh array from a validated (storage, offset, shape, strides): ``storage`` must be an array decoded from
    a storage payload, offset, sizes and strides non-negative ints, and every element inside the storage."""
    if not (isinstance(storage, np.ndarray) and storage.ndim == 1 and storage.dtype.kind in "biuf"):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not decoded storage bytes")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_int(v) and v >= 0 for v in (offset, *size, *stride))):
        raise UnsafePickleError(f"tensor with offset {offset!r}, size {size!r}, stride {stride!r}: sizes, strides "
                                "and offset must be non-negative integers of matching rank")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= storage.size:
        raise UnsafePickleError(f"tensor of size {size} (offset {offset}, stride {stride}) reaches element {last} of "
                                f"a storage of {storage.size}")
    index = np.full(size, offset, dtype=np.int64)
    for axis, (s, st) in enumerate(zip(size, stride)):
        index += (np.arange(s, dtype=np.int64) * st).reshape((s,) + (1,) * (len(size) - axis - 1))
    return storage[index]


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    if func is not _rebuild_tensor or not isinstance(args, tuple):
        raise UnsafePickleError(f"_rebuild_from_type_v2 may only rebuild tensors, got {func!r:.80}")
    return func(*args)


def _allowed_pyg() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = dict(_NUMPY)
    for module in ("torch_geometric.data.data", "torch_geometric.data.storage", "torch_geometric.data.batch"):
        for name in ("Data", "GlobalStorage", "BaseData", "Batch", "DataBatch"):
            allowed[(module, name)] = type(name, (_Record,), {})
        for name in ("DataEdgeAttr", "DataTensorAttr"):
            allowed[(module, name)] = _Marker
    allowed.update({
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch", "Tensor"): _Marker,
        ("collections", "OrderedDict"): dict,
        ("copyreg", "_reconstructor"): _safe_reconstructor,
        ("builtins", "object"): object,
    })
    allowed.update({("torch", name): _TorchDtype(name) for name in _TORCH_DTYPES})
    return allowed


_PYG_ALLOWED = _allowed_pyg()


_PLAIN = (int, float, bool, str, bytes, type(None), np.generic)


def _checked_value(key: str, value: Any) -> Any:
    """A field value as the converters may use it: a numeric numpy array, a plain scalar or a list of them."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise UnsafePickleError(f"field {key!r}: array of dtype {value.dtype} (only numbers are accepted)")
        return value
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
        return value
    raise UnsafePickleError(f"field {key!r} holds a {type(value).__name__} (only arrays and plain values)")


def loads_pyg(data: bytes) -> dict[str, Any]:
    """Unpickle a pickled torch_geometric ``Data`` into {field: numpy array or scalar} without torch."""
    obj = RestrictedUnpickler(io.BytesIO(data), _PYG_ALLOWED).load()
    if not isinstance(obj, _Record):
        raise DataError(f"expected a pickled torch_geometric Data object, got {type(obj).__name__}")
    state = obj.state
    store = state.get("_store")
    mapping = store.state.get("_mapping", {}) if isinstance(store, _Record) else state
    return {k: _checked_value(k, v) for k, v in mapping.items() if not k.startswith("_")}
