"""Write small files in PyTorch's legacy (non-zip) `torch.save` format, without PyTorch.

The layout is the one `torch.serialization._legacy_save` writes (pickle protocol 2): the magic
number, the protocol version and the sys info pickles, the object pickle (tensors as
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`, storages
as persistent ids), the storage-key list pickle, then each storage as its int64 element count and
its little-endian bytes. The pickler sees stand-in `torch` and `torch._utils` modules, installed in
`sys.modules` only while it writes, so that the globals in the file are PyTorch's real names.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("float16"): "HalfStorage",
}


@dataclass(frozen=True)
class TensorIn:
    """A tensor of the file: a view (offset, shape, strides in elements) of a named storage."""

    storage: str
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def contiguous(storage: str, shape: tuple[int, ...], offset: int = 0) -> TensorIn:
    strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    return TensorIn(storage, offset, tuple(shape), strides)


class _Storage:
    def __init__(self, key: str, array: np.ndarray, storage_type: type) -> None:
        self.key, self.array, self.storage_type = key, array, storage_type


class _Tensor:
    def __init__(self, rebuild, storage: _Storage, spec: TensorIn) -> None:
        self.rebuild, self.storage, self.spec = rebuild, storage, spec

    def __reduce__(self):
        spec = self.spec
        return (
            self.rebuild,
            (self.storage, spec.offset, spec.shape, spec.strides, False, OrderedDict()),
        )


class _Foreign:
    """An object pickled as a call of any global: what a malicious file would hold."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@contextmanager
def _stand_in_torch():
    torch, utils = ModuleType("torch"), ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError("stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def legacy_bytes(
    storages: dict[str, np.ndarray],
    tensors: dict[str, TensorIn],
    extra: dict[str, tuple[Any, ...]] | None = None,
) -> bytes:
    """The legacy-format bytes of the state dict `tensors` over `storages` (1-D arrays).

    `extra` adds entries pickled as calls of arbitrary globals: name -> (function, *args).
    """
    out = io.BytesIO()
    with _stand_in_torch() as torch:
        for header in (
            MAGIC_NUMBER,
            1001,
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}},
        ):
            pickle.dump(header, out, protocol=2)
        wrapped = {
            key: _Storage(key, array, getattr(torch, STORAGE_NAMES[array.dtype]))
            for key, array in storages.items()
        }
        state: OrderedDict[str, Any] = OrderedDict(
            (name, _Tensor(torch._utils._rebuild_tensor_v2, wrapped[spec.storage], spec))
            for name, spec in tensors.items()
        )
        for name, (function, *args) in (extra or {}).items():
            state[name] = _Foreign(function, *args)
        pickler = pickle.Pickler(out, protocol=2)
        pickler.persistent_id = _storage_id
        pickler.dump(state)
        pickle.dump(list(storages), out, protocol=2)
    for array in storages.values():
        out.write(struct.pack("<q", array.size))
        out.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def _storage_id(obj: Any):
    if isinstance(obj, _Storage):
        return ("storage", obj.storage_type, obj.key, "cpu", obj.array.size, None)
    return None


def write_legacy(path: Path, *args, **kwargs) -> Path:
    path.write_bytes(legacy_bytes(*args, **kwargs))
    return path
