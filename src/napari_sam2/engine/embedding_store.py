"""Image embeddings kept on disk (zarr), reused across sessions, processes and the CLI.

An entry holds one image's encoder output (the stride-16 features before the 'no memory'
embedding, and the decoder's two skip features), keyed by a hash of
- the model input: the pixels after normalisation and channel choice (so a change of pixels,
  normalisation or channels is a miss),
- the model's weights (a hash of every tensor of its state dict, not its name) and input size,
- the precision the encoder ran in (fp32, bf16, fp16 and int8 give different features).

Safety: an entry is written into a temporary folder and renamed into place, so readers never
see half an entry and concurrent writers of the same key leave one complete entry (the first
rename wins, the others are discarded). Every entry carries a checksum of its arrays; an entry
that fails to open or to match it is deleted and reported as a miss, never used.
Size: bounded by `max_bytes`; after each write the least recently used entries (by the time
they were last written or read) are deleted until the total fits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..images.model_input import upscale_smoothing
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .quantize import source_model

FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 20 * 10**9
ENTRY_SUFFIX = ".zarr"
_ARRAYS = ("embedding", "high_res_0", "high_res_1")
_TORCH_TO_STORED = {  # numpy has no bfloat16: its bits are kept as int16
    torch.float32: ("float32", torch.float32),
    torch.float16: ("float16", torch.float16),
    torch.bfloat16: ("int16", torch.int16),
}

_weights_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of every tensor of the model's state dict (names, shapes, dtypes, values).

    Computed once per model and recomputed when any parameter was changed in place (training).
    """
    versions = tuple(p._version for p in model.parameters())
    memo = _weights_digests.get(model)
    if memo is not None and memo[0] == versions:
        return memo[1]
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(_bits(t).tobytes())
    digest = h.hexdigest()
    _weights_digests[model] = (versions, digest)
    return digest


def _bits(t: torch.Tensor) -> np.ndarray:
    """The raw bytes of a tensor of any dtype, as a numpy array."""
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return np.zeros(0, np.uint8)
    return flat.view(torch.uint8).numpy() if t.dtype != torch.bool else flat.numpy()


def embedding_key(model: SAM2Model, rgb: np.ndarray, precision: str) -> str:
    """The cache key of one prepared image (`prepare_image`'s RGB) for `model` in `precision`."""
    h = hashlib.blake2b(digest_size=20)
    pixels = np.ascontiguousarray(rgb)
    h.update(
        f"v{FORMAT_VERSION};{weights_digest(source_model(model))};{model.image_size};{precision};"
        f"{_input_options(model)}"
        f"{pixels.shape};{pixels.dtype};".encode()
    )
    h.update(memoryview(pixels).cast("B"))
    return h.hexdigest()


def _input_options(model: SAM2Model) -> str:
    """What else changes the model's input: a blur before enlarging (only when set, so that the
    keys of models without it stay as they were)."""
    smoothing = upscale_smoothing(source_model(model))
    return f"upscale_smoothing={smoothing!r};" if smoothing else ""


def precision_name(dtype: torch.dtype | str) -> str:
    """'fp32', 'bf16', 'fp16' for a torch dtype; strings (e.g. 'int8') pass through."""
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.qint8: "int8"}
    return dtype if isinstance(dtype, str) else names[dtype]


class EmbeddingStore:
    """A folder of image embeddings, bounded by `max_bytes` (least recently used go first)."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder).expanduser()
        self.max_bytes = int(max_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.folder)!r}, max_bytes={self.max_bytes})"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{ENTRY_SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_dir()

    # ------------------------------------------------------------------ reading

    def get(self, key: str, device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[torch.Tensor]] | None:
        """(embedding (1, C, h, w), [high_res...]) of `key`, or None when absent or unreadable."""
        path = self.path(key)
        if not path.is_dir():
            self.misses += 1
            return None
        try:
            tensors = _read_entry(path)
        except Exception:  # corrupt or partial (e.g. a disk fault or a file edited by hand)
            self._discard(path)
            self.misses += 1
            return None
        try:
            os.utime(path)  # last use, for eviction
        except OSError:
            pass
        self.hits += 1
        tensors = [t.to(device) for t in tensors]
        return tensors[0], tensors[1:]

    # ------------------------------------------------------------------ writing

    def put(self, key: str, embedding: torch.Tensor, high_res: Sequence[torch.Tensor]) -> None:
        """Store one image's features (batch 1); a concurrent writer of the same key may win.
        A write that fails on the file system (full disk, a file removed under it) is dropped
        with a warning: the features were computed, only their copy on disk is missing."""
        final = self.path(key)
        if final.is_dir():
            return
        tmp = self.folder / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            _write_entry(tmp, [embedding, *high_res])
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            warnings.warn(f"Could not store an embedding in {self.folder} ({error}); it is kept in memory only.")
            return
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.rename(tmp, final)
        except OSError:  # another process stored this key first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        self.writes += 1
        self.evict()

    # ------------------------------------------------------------------ size

    def entries(self) -> list[tuple[Path, float, int]]:
        """(path, last use, bytes) of every complete entry."""
        found = []
        for path in self.folder.glob(f"*{ENTRY_SUFFIX}"):
            try:
                used = path.stat().st_mtime
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            except OSError:  # removed meanwhile
                continue
            found.append((path, used, size))
        return found

    @property
    def nbytes(self) -> int:
        return sum(size for _, _, size in self.entries())

    def evict(self) -> int:
        """Delete least recently used entries until the total fits `max_bytes`; how many went."""
        entries = sorted(self.entries(), key=lambda e: e[1])
        total = sum(size for _, _, size in entries)
        removed = 0
        for path, _, size in entries[:-1]:  # the newest entry always stays
            if total <= self.max_bytes:
                break
            self._discard(path)
            total -= size
            removed += 1
        return removed

    def clear(self) -> None:
        for path, _, _ in self.entries():
            self._discard(path)

    def _discard(self, path: Path) -> None:
        """Remove an entry: first renamed away (atomic), so no reader opens half of it."""
        trash = self.folder / f".{path.name}.{uuid.uuid4().hex[:8]}.trash"
        try:
            os.rename(path, trash)
        except OSError:
            return  # already gone
        shutil.rmtree(trash, ignore_errors=True)


def encode_cached(
    store: EmbeddingStore | None,
    model: SAM2Model,
    precision: str,
    rgbs: Sequence[np.ndarray],
    encode: Callable[[list[np.ndarray]], ImageFeatures],
) -> ImageFeatures:
    """The features of a batch of prepared images: read from `store` where it has them, the
    others computed by `encode` (a batch of RGBs -> ImageFeatures) and stored."""
    if store is None:
        return encode(list(rgbs))
    keys = [embedding_key(model, rgb, precision) for rgb in rgbs]
    found: list[ImageFeatures | None] = []
    for key in keys:
        got = store.get(key, model.device)
        found.append(None if got is None else _features(model, *got))
    missing = [i for i, f in enumerate(found) if f is None]
    if missing:
        computed = encode([rgbs[i] for i in missing])
        for j, i in enumerate(missing):
            found[i] = computed.select(j)
            store.put(keys[i], found[i].embedding, found[i].high_res)
    if len(found) == 1:
        return found[0]
    return ImageFeatures(
        torch.cat([f.embedding for f in found]),
        torch.cat([f.pos for f in found]),
        [torch.cat([f.high_res[k] for f in found]) for k in range(len(found[0].high_res))],
    )


def _features(model: SAM2Model, embedding: torch.Tensor, high_res: list[torch.Tensor]) -> ImageFeatures:
    pos = model.image_encoder.neck.position_encoding(embedding).to(embedding.dtype)
    return ImageFeatures(embedding, pos, high_res)


def _write_entry(folder: Path, tensors: list[torch.Tensor]) -> None:
    import zarr

    group = zarr.open_group(str(folder), mode="w")
    digest = hashlib.blake2b(digest_size=16)
    dtypes = []
    for name, tensor in zip(_ARRAYS, tensors):
        stored, view = _TORCH_TO_STORED[tensor.dtype]
        values = tensor.detach().cpu().contiguous().view(view).numpy()
        array = zarr.open_array(
            store=str(folder / name), mode="w", shape=values.shape, chunks=values.shape, dtype=stored
        )
        array[...] = values
        digest.update(memoryview(values).cast("B"))
        dtypes.append(str(tensor.dtype).removeprefix("torch."))
    # The encoder's memory layout (e.g. channels-last) is kept: later kernels pick their
    # arithmetic by layout, so a contiguous copy would track a few ulps differently.
    strides = [list(t.stride()) for t in tensors]
    group.attrs.update(
        {"napari_sam2_embedding": FORMAT_VERSION, "dtypes": dtypes, "strides": strides, "blake2b": digest.hexdigest()}
    )


def _read_entry(folder: Path) -> list[torch.Tensor]:
    import zarr

    attrs = dict(zarr.open_group(str(folder), mode="r").attrs)
    if attrs.get("napari_sam2_embedding") != FORMAT_VERSION:
        raise ValueError(f"{folder}: not a version {FORMAT_VERSION} embedding entry")
    digest = hashlib.blake2b(digest_size=16)
    tensors = []
    for name, dtype in zip(_ARRAYS, attrs["dtypes"]):
        values = np.ascontiguousarray(zarr.open_array(store=str(folder / name), mode="r")[...])
        digest.update(memoryview(values).cast("B"))
        tensor = torch.from_numpy(values)
        tensors.append(tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor)
    for i, stride in enumerate(attrs.get("strides") or []):
        if i < len(tensors) and tuple(stride) != tensors[i].stride():
            laid_out = torch.empty_strided(tensors[i].shape, stride, dtype=tensors[i].dtype)
            tensors[i] = laid_out.copy_(tensors[i])
    if digest.hexdigest() != attrs["blake2b"] or len(tensors) != len(_ARRAYS):
        raise ValueError(f"{folder}: checksum mismatch")
    return tensors
