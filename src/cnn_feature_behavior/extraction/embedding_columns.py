"""A read-only catalog view of the embedding for nodes that need only a few of its columns."""

from __future__ import annotations

from typing import Any, NoReturn

from kedro.io import AbstractDataset, DatasetError

from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset


class EmbeddingColumnsDataset(AbstractDataset[object, ShardedEmbeddingDataset]):
    """Loads as the embedding's `ShardedEmbeddingDataset`, whose `load_columns([...])` reads
    only the named feature columns: Figure 1 needs one column, not 50,000 x 12,416 floats."""

    def __init__(self, path: str) -> None:
        self._path = path

    def load(self) -> ShardedEmbeddingDataset:
        embedding = ShardedEmbeddingDataset(self._path)
        embedding.feature_columns()  # fails here, naming the folder, if there is no embedding
        return embedding

    def save(self, data: object) -> NoReturn:
        raise DatasetError(f"{self._path}: the embedding columns view is read-only")

    def content_digest(self) -> str:
        """The embedding's (lineage records: the view is checked like the embedding itself)."""
        return ShardedEmbeddingDataset(self._path).content_digest()

    def _exists(self) -> bool:
        return ShardedEmbeddingDataset(self._path).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
