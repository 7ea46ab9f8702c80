"""Read a PyTorch state dict saved in PyTorch's legacy (non-zip) format, without PyTorch.

Hand-written because the only library that reads the format is PyTorch itself (a 700 MB
dependency for one file read once at set-up), and because its loader runs the pickle's globals.
The layout, as `torch.serialization._legacy_load` reads it:

    pickle  magic number 0x1950A86A20F9469CFC6C
    pickle  protocol version 1001
    pickle  sys info ({"little_endian": True, "type_sizes": ..., "protocol_version": 1001})
    pickle  the object (here an OrderedDict of tensors); each tensor is
            `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
            backward_hooks[, metadata])`, its storage a persistent id
            ("storage", torch.<Type>Storage, key, location, numel, view)
    pickle  the list of storage keys, in the order the storages follow
    then    per storage: its element count (int64, little-endian) and its raw little-endian data

Every pickle goes through a restricted unpickler that admits only the tensor-rebuild function,
the storage type names and `collections.OrderedDict`, none of them called from the file: the
rebuild becomes a record of (storage, offset, shape, strides), filled in from the storages once
they are read. Any other global is refused, naming the file and the global.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
_INT64 = struct.Struct("<q")


class TorchLegacyFormatError(ValueError):
    """The file is not a readable legacy PyTorch state dict; the message names the file."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int
    view: tuple[str, int, int] | None  # (view key, offset, size) of a storage view, or None


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_requires_grad_hooks_metadata):
    """Stands in for torch._utils._rebuild_tensor_v2: records the tensor's place in its storage."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"a tensor whose storage is {type(storage).__name__}")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, origin: str) -> None:
        super().__init__(stream)
        self.origin = origin

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _REBUILD_TENSOR:
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise TorchLegacyFormatError(
            f"{self.origin}: refused global {module}.{name}: a legacy state dict holds only "
            "tensors (torch._utils._rebuild_tensor_v2, torch.<Type>Storage) in OrderedDicts"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchLegacyFormatError(
                f"{self.origin}: refused persistent id {str(pid)[:80]!r} (only tensor storages)"
            )
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchLegacyFormatError(f"{self.origin}: storage {key!r} has no storage type")
        return _StorageRef(str(key), storage_type.dtype, int(numel), view)


def read_torch_legacy(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """The state dict saved at `path` (legacy format): name -> array, shapes as in PyTorch."""
    path = Path(path)
    return read_torch_legacy_bytes(path.read_bytes(), str(path))


def read_torch_legacy_bytes(payload: bytes, origin: str) -> OrderedDict[str, np.ndarray]:
    """The state dict in `payload` (a legacy-format file read from `origin`, named in errors)."""
    if payload.startswith(b"PK\x03\x04"):
        raise TorchLegacyFormatError(
            f"{origin}: not a legacy PyTorch file but a zip archive (torch >= 1.6's default "
            "format), which is not read here"
        )
    stream = io.BytesIO(payload)
    header = [_load_pickle(stream, origin, what) for what in ("magic number", "protocol version")]
    if header[0] != MAGIC_NUMBER:
        raise TorchLegacyFormatError(
            f"{origin}: not a legacy PyTorch file (magic number {header[0]!r})"
        )
    if header[1] != PROTOCOL_VERSION:
        raise TorchLegacyFormatError(f"{origin}: protocol version {header[1]!r}, expected 1001")
    sys_info = _load_pickle(stream, origin, "sys info")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
        raise TorchLegacyFormatError(f"{origin}: saved big-endian ({sys_info!r}); not supported")
    state = _load_pickle(stream, origin, "state dict")
    keys = _load_pickle(stream, origin, "storage keys")
    if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
        raise TorchLegacyFormatError(f"{origin}: the object saved is not a dict of tensors")
    storages = _read_storages(stream, _storages_of(state, keys, origin), keys, origin)
    if stream.read(1):
        raise TorchLegacyFormatError(f"{origin}: data after the last storage (corrupt file?)")
    return OrderedDict((name, _materialise(ref, storages, origin)) for name, ref in state.items())


def _load_pickle(stream: io.BytesIO, origin: str, what: str) -> Any:
    try:
        return _RestrictedUnpickler(stream, origin).load()
    except TorchLegacyFormatError:
        raise
    except Exception as error:  # a corrupt pickle fails in many ways; none of them runs code
        raise TorchLegacyFormatError(
            f"{origin}: unreadable {what} pickle at byte {stream.tell()} "
            f"(truncated or corrupt file): {error!r}"
        ) from None


def _storages_of(state: dict, keys: Any, origin: str) -> dict[str, _StorageRef]:
    roots = {ref.storage.key: ref.storage for ref in state.values()}
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(roots):
        raise TorchLegacyFormatError(
            f"{origin}: the storage-key list does not match the tensors' storages"
        )
    return roots


def _read_storages(
    stream: io.BytesIO, roots: dict[str, _StorageRef], keys: list, origin: str
) -> dict[str, np.ndarray]:
    storages = {}
    for key in map(str, keys):
        root = roots[key]
        count = stream.read(_INT64.size)
        if len(count) < _INT64.size:
            raise TorchLegacyFormatError(f"{origin}: truncated before storage {key}'s size")
        (numel,) = _INT64.unpack(count)
        if numel != root.numel:
            raise TorchLegacyFormatError(
                f"{origin}: storage {key} holds {numel} elements, its tensors say {root.numel}"
            )
        data = stream.read(numel * root.dtype.itemsize)
        if len(data) < numel * root.dtype.itemsize:
            raise TorchLegacyFormatError(
                f"{origin}: truncated in storage {key} ({len(data)} of "
                f"{numel * root.dtype.itemsize} bytes)"
            )
        storages[key] = np.frombuffer(data, dtype=root.dtype)
    return storages


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray], origin: str) -> np.ndarray:
    data = storages[ref.storage.key]
    if ref.storage.view is not None:
        _, view_offset, view_size = ref.storage.view
        data = data[int(view_offset) : int(view_offset) + int(view_size)]
    if ref.shape:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides))
        if min(ref.shape) > 0 and (ref.offset < 0 or last >= data.size):
            raise TorchLegacyFormatError(
                f"{origin}: a tensor {ref.shape} at offset {ref.offset} runs past its storage "
                f"{ref.storage.key} of {data.size} elements"
            )
    elif ref.offset >= data.size:
        raise TorchLegacyFormatError(f"{origin}: a scalar past its storage {ref.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * data.itemsize for s in ref.strides),
        writeable=False,
    )
    # A native-byte-order copy: independent of the payload, and what Keras expects.
    return np.array(view, dtype=data.dtype.newbyteorder("="))
