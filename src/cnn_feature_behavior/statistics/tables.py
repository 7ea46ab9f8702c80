"""The tables the statistics are computed from and stored in, as arrays and back.

Shared by every pipeline that reads the embedding with the image index (dks, calibration,
transfer) or a DKS-shaped table (features x classes, indexed by feature, `layer` first).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cnn_feature_behavior.extraction.layer_kinds import LAYER_KINDS, normalise_layer_kind

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("image_id", "label", "class_name")
MANIFEST_COLUMNS = ("feature", "layer", "layer_kind")
LAYER_COLUMN = "layer"


def embedding_labels(
    embedding: pd.DataFrame, image_index: pd.DataFrame
) -> tuple[np.ndarray, list[str]]:
    """Label of each embedding row (joined on image_id) and the class names in label order.

    Images of the index missing from the embedding (rejected at extraction) are logged; embedding
    rows missing from the index, duplicates and gaps in the labels are errors.
    """
    missing_columns = [c for c in INDEX_COLUMNS if c not in image_index.columns]
    if missing_columns:
        raise ValueError(
            f"image_index lacks column(s) {missing_columns}; has {list(image_index.columns)}"
        )
    duplicated = image_index["image_id"][image_index["image_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"image_index has {len(duplicated)} duplicated image_id(s): {duplicated.head(5).tolist()}"
        )
    if embedding.index.has_duplicates:
        repeated = embedding.index[embedding.index.duplicated()]
        raise ValueError(
            f"embedding has {len(repeated)} duplicated image_id(s): {repeated[:5].tolist()}"
        )

    classes = image_index[["label", "class_name"]].drop_duplicates().sort_values("label")
    ambiguous = classes["label"][classes["label"].duplicated()]
    if len(ambiguous):
        raise ValueError(
            f"image_index gives several class_name values to label(s) {ambiguous.unique()[:10].tolist()}"
        )
    class_names = classes["class_name"].astype(str).tolist()
    if classes["label"].tolist() != list(range(len(classes))):
        gaps = sorted(set(range(int(classes["label"].max()) + 1)) - set(classes["label"].tolist()))
        raise ValueError(f"image_index labels must be 0..C-1 without gaps; missing {gaps[:10]}")
    repeated_names = sorted({n for n in class_names if class_names.count(n) > 1})
    if repeated_names:
        raise ValueError(
            f"image_index has class_name(s) used by several labels: {repeated_names[:10]}"
        )

    labels = image_index.set_index("image_id")["label"].reindex(embedding.index)
    unknown = labels.index[labels.isna()]
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} embedding image(s) are not in image_index, e.g. {unknown[:5].tolist()}"
        )
    not_embedded = len(image_index) - len(embedding)
    if not_embedded:
        logger.info(
            "%d of %d indexed images have no embedding row (rejected at extraction); DKS uses %d",
            not_embedded,
            len(image_index),
            len(embedding),
        )
    return labels.to_numpy(np.int64), class_names


def embedding_matrix(embedding: pd.DataFrame, feature_manifest: pd.DataFrame) -> np.ndarray:
    """The embedding's (images, features) float32 values, checked against the manifest's features."""
    check_feature_columns(list(embedding.columns), feature_manifest)
    return embedding.to_numpy(dtype=np.float32, copy=False)


def check_feature_columns(embedding_columns: list, feature_manifest: pd.DataFrame) -> None:
    """Error unless the embedding's feature columns are the manifest's features, in order."""
    missing_columns = [c for c in MANIFEST_COLUMNS if c not in feature_manifest.columns]
    if missing_columns:
        raise ValueError(f"feature_manifest lacks column(s) {missing_columns}")
    features = feature_manifest["feature"].astype(str).tolist()
    columns = [str(c) for c in embedding_columns]
    if columns != features:
        if len(columns) != len(features):
            raise ValueError(
                f"embedding has {len(columns)} feature columns, feature_manifest {len(features)} features"
            )
        first = next(i for i, (a, b) in enumerate(zip(columns, features)) if a != b)
        raise ValueError(
            f"embedding column {first} is {columns[first]!r} but feature_manifest row {first} is "
            f"{features[first]!r}: the two must list the same features in the same order"
        )


def labelled_frame(
    matrix: np.ndarray, feature_manifest: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """A (features x columns) float32 table indexed by feature, with the layer as first column."""
    if LAYER_COLUMN in columns:
        raise ValueError(f"a class is named {LAYER_COLUMN!r}, which clashes with the layer column")
    frame = pd.DataFrame(
        matrix.astype(np.float32, copy=False),
        index=pd.Index(feature_manifest["feature"].astype(str).to_numpy(), name="feature"),
        columns=columns,
    )
    frame.insert(0, LAYER_COLUMN, feature_manifest[LAYER_COLUMN].astype(str).to_numpy())
    return frame


def dks_values(dks: pd.DataFrame, feature_manifest: pd.DataFrame) -> np.ndarray:
    """The (features, classes) values of a dks-shaped table, checked against the manifest."""
    if LAYER_COLUMN not in dks.columns:
        raise ValueError(f"DKS table lacks the {LAYER_COLUMN!r} column")
    features = feature_manifest["feature"].astype(str).tolist()
    if [str(f) for f in dks.index] != features:
        raise ValueError(
            f"DKS table rows ({len(dks)}) are not feature_manifest's {len(features)} features in order"
        )
    return dks.drop(columns=LAYER_COLUMN).to_numpy(np.float32)


def layer_groups(feature_manifest: pd.DataFrame, with_kinds: bool) -> list[tuple[str, np.ndarray]]:
    """(group, feature row mask) per layer in manifest order, then `spatial` and `head` if asked.

    Layer names are the source model's own (any CNN); the kinds are those of
    `extraction.layer_kinds` (an earlier manifest's `conv` / `fc` read as `spatial` / `head`).
    """
    layers = feature_manifest[LAYER_COLUMN].astype(str).to_numpy()
    groups = [(layer, layers == layer) for layer in pd.unique(layers)]
    if with_kinds:
        clashing = sorted(set(LAYER_KINDS) & set(layers))
        if clashing:
            raise ValueError(
                f"feature_manifest has a layer named {clashing[0]!r}, the name of a group of "
                f"layers ({', '.join(LAYER_KINDS)}): rename the layer in the source model's config"
            )
        kinds = feature_manifest["layer_kind"].map(normalise_layer_kind).to_numpy()
        groups += [(kind, kinds == kind) for kind in LAYER_KINDS if np.any(kinds == kind)]
    return groups


def mean_images_per_class(dks_class_sizes: pd.DataFrame) -> float:
    """Mean images per class over the images the DKS was computed on."""
    return float(dks_class_sizes["n_images"].mean())
