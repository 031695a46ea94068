"""A least-recently-used store of image embeddings, bounded by their size in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from ..engine.predictor import ImageEmbedding

DEFAULT_MAX_BYTES = 512 * 2**20


class EmbeddingCache:
    """Keeps the most recently used embeddings whose total size fits in `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, ImageEmbedding] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> ImageEmbedding | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, embedding: ImageEmbedding) -> None:
        """Store `embedding`, dropping the least recently used ones beyond the budget."""
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = embedding
        self._bytes += embedding.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
