"""A read-only catalog view of the embedding for nodes that need only a few of its columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset


class EmbeddingColumnsDataset(AbstractDataset[Sequence[str], ShardedEmbeddingDataset]):
    """Loads as the embedding's `ShardedEmbeddingDataset`, whose `load_columns([...])` reads
    only the named feature columns: Figure 1 needs one column, not 50,000 x 12,416 floats.

    The extraction node "saves" the embedding's column names to it right after saving the
    embedding: nothing is written (the folder is the embedding's), but the view becomes an
    output of the node that wrote the folder, so that the lineage shows where it comes from.
    Anything else is refused: the view is read-only.
    """

    # The lineage hook writes no record for a save that writes nothing: the folder's record
    # stays the embedding's, which the view is checked against when a node loads it.
    WRITES_NOTHING = True

    def __init__(self, path: str) -> None:
        self._path = path

    def load(self) -> ShardedEmbeddingDataset:
        embedding = ShardedEmbeddingDataset(self._path)
        embedding.feature_columns()  # fails here, naming the folder, if there is no embedding
        return embedding

    def save(self, data: Sequence[str]) -> None:
        if not isinstance(data, list | tuple) or not all(isinstance(c, str) for c in data):
            raise DatasetError(
                f"{self._path}: the embedding columns view is read-only (it takes only the "
                f"column names of the embedding just saved, not a {type(data).__name__})"
            )

    def content_digest(self) -> str:
        """The embedding's (lineage records: the view is checked like the embedding itself)."""
        return ShardedEmbeddingDataset(self._path).content_digest()

    def _exists(self) -> bool:
        return ShardedEmbeddingDataset(self._path).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
