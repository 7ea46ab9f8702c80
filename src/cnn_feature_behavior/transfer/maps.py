"""2-D maps of an embedding: t-SNE after PCA on a stratified subsample of the images.

A map is for looking at, not for measuring, so it uses every image (no train/test split): each
embedding is standardised over the subsample it draws, then reduced by a seeded PCA and laid out
by a seeded Barnes-Hut t-SNE (scikit-learn).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.extraction.layer_kinds import SPATIAL, normalise_layer_kind
from cnn_feature_behavior.transfer.embeddings import fne_values, standardise
from cnn_feature_behavior.transfer.settings import DEFAULT_MAP_EMBEDDINGS, MapSettings

logger = logging.getLogger(__name__)

FULL_NETWORK = "full_network"
FNE = "fne"
MAP_COLUMNS = ("dataset", "source_model", "embedding", "image_id", "label", "class_name", "x", "y")


def default_embeddings(layers: Sequence[str], kinds: Sequence[str]) -> tuple[str, ...]:
    """`transfer.maps.embeddings: default` for an embedding whose features come from `layers`
    (one per feature, manifest order) of `kinds` (`spatial` / `head`): its middle (of an even
    count, the earlier) and last spatial layers (of every layer where none is spatial), then the
    full network and the FNE. VGG16: conv3_3 and conv5_3, this project's fixed choice before."""
    ordered = list(pd.unique(np.asarray([str(layer) for layer in layers])))
    kind_of = {str(layer): normalise_layer_kind(kind) for layer, kind in zip(layers, kinds)}
    spatial = [layer for layer in ordered if kind_of[layer] == SPATIAL] or ordered
    chosen = list(dict.fromkeys([spatial[(len(spatial) - 1) // 2], spatial[-1]]))
    return (*chosen, FULL_NETWORK, FNE)


def for_layers(settings: MapSettings, layers: Sequence[str], kinds: Sequence[str]) -> MapSettings:
    """`settings` with `default` embeddings resolved (`default_embeddings`) for an embedding whose
    features come from `layers` of `kinds`."""
    if settings.embeddings != DEFAULT_MAP_EMBEDDINGS:
        return settings
    return dataclasses.replace(settings, embeddings=default_embeddings(layers, kinds))


def stratified_subsample(labels: np.ndarray, max_images: int, seed: int) -> np.ndarray:
    """Sorted row positions of at most `max_images` images, each class in proportion to its size.

    Quotas by largest remainder, so they add up to exactly `max_images`; when there are at least
    as many places as classes, every class keeps one image or more. All rows when they fit.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    if len(labels) <= max_images:
        return np.arange(len(labels))
    classes, sizes = np.unique(labels, return_counts=True)
    share = sizes * (max_images / len(labels))
    quotas = np.floor(share).astype(np.int64)
    if max_images >= len(classes):
        quotas = np.maximum(quotas, 1)
    # Hand out what is left by largest remainder, or take back from the largest quotas.
    order = np.argsort(-(share - quotas), kind="stable")
    position = 0
    while quotas.sum() < max_images:
        index = order[position % len(order)]
        if quotas[index] < sizes[index]:
            quotas[index] += 1
        position += 1
    while quotas.sum() > max_images:
        quotas[np.argmax(quotas)] -= 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == klass), size=int(quota), replace=False)
        for klass, quota in zip(classes, quotas)
    ]
    return np.sort(np.concatenate(chosen))


def tsne_coordinates(
    values: np.ndarray,
    *,
    pca_components: int = 50,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    seed: int = 2018,
    threads: int | None = None,
) -> np.ndarray:
    """(images, 2) t-SNE coordinates of the rows of `values`, after a seeded PCA.

    PCA keeps at most `pca_components` (fewer when there are fewer images or features); the
    perplexity is lowered to (images - 1) / 3 when there are too few images for it. `threads`
    caps the BLAS / OpenMP threads (None: the libraries' default); on a busy machine, or for a
    few hundred images, one thread is faster than contended ones.
    """
    values = np.asarray(values, dtype=np.float32)
    n_images, n_features = values.shape
    if n_images < 4:
        raise ValueError(f"a t-SNE map needs at least 4 images, got {n_images}")
    if not np.isfinite(values).all():
        raise ValueError(
            f"{int((~np.isfinite(values)).sum())} non-finite value(s) in the embedding"
        )
    components = min(pca_components, n_images - 1, n_features)
    effective = min(float(perplexity), (n_images - 1) / 3.0)
    with threadpool_limits(limits=threads):
        if components < n_features:
            reduced = PCA(
                n_components=components, svd_solver="randomized", random_state=seed
            ).fit_transform(values)
        else:
            reduced = values - values.mean(axis=0)
        tsne = TSNE(
            n_components=2,
            perplexity=effective,
            init="pca",
            learning_rate="auto",
            max_iter=max_iter,
            random_state=seed,
        )
        return tsne.fit_transform(reduced.astype(np.float32)).astype(np.float64)


def embedding_values(
    name: str, values: np.ndarray, feature_layers: np.ndarray, settings: MapSettings
) -> np.ndarray | None:
    """The standardised matrix of one named embedding of the subsample, None for an absent layer.

    `full_network` is every feature; `fne` the full network three-valued; any other name is a
    layer of the source model, which the embedding may lack (fc layers with conv-only weights).
    """
    if name == FULL_NETWORK:
        return standardise(values)
    if name == FNE:
        return fne_values(
            standardise(values), positive=settings.fne.positive, negative=settings.fne.negative
        )
    mask = feature_layers == name
    if not mask.any():
        return None
    return standardise(values[:, mask])


@dataclass(frozen=True)
class MapImages:
    """The embedded images, in the embedding's row order: labels (0..C-1), ids, class names."""

    labels: np.ndarray
    image_ids: np.ndarray
    class_names: np.ndarray

    @classmethod
    def of(
        cls, labels: Sequence[int], image_ids: Sequence[str], class_names: Sequence[str]
    ) -> MapImages:
        labels = np.asarray(labels, dtype=np.int64)
        image_ids = np.asarray([str(image_id) for image_id in image_ids])
        if len(image_ids) != len(labels):
            raise ValueError(f"{len(labels)} labels but {len(image_ids)} image ids")
        return cls(labels, image_ids, np.asarray([str(name) for name in class_names]))


def embedding_maps(
    values: np.ndarray,
    feature_layers: Sequence[str],
    images: MapImages,
    settings: MapSettings,
    *,
    known_layers: Sequence[str],
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """The `embedding_maps` table: one row per (embedding, subsampled image), coordinates x, y.

    `known_layers` are the source models' layer names: a listed embedding that is one of them but
    absent from `feature_layers` is skipped with a warning saying what to set; a name that is none
    of them (nor `full_network` / `fne`) is an error. `default` embeddings must be resolved first
    (`for_layers`).
    """
    values = np.asarray(values)
    feature_layers = np.asarray([str(layer) for layer in feature_layers])
    if values.shape != (len(images.labels), len(feature_layers)):
        raise ValueError(
            f"embedding {values.shape} must be (images {len(images.labels)}, features "
            f"{len(feature_layers)})"
        )
    if isinstance(settings.embeddings, str):
        raise ValueError("transfer.maps.embeddings `default`: resolve it with maps.for_layers")
    _check_known(settings.embeddings, known_layers)
    rows = stratified_subsample(images.labels, settings.max_images, settings.seed)
    sample, labels = values[rows], images.labels[rows]
    logger.info(
        "Embedding maps: %d of %d images (stratified, seed %d), embeddings %s",
        len(rows),
        len(images.labels),
        settings.seed,
        list(settings.embeddings),
    )
    frames = []
    for name in settings.embeddings:
        matrix = embedding_values(name, sample, feature_layers, settings)
        if matrix is None:
            _warn_absent(name, feature_layers, source_model)
            continue
        xy = tsne_coordinates(
            matrix,
            pca_components=settings.pca_components,
            perplexity=settings.perplexity,
            max_iter=settings.max_iter,
            seed=settings.seed,
            threads=settings.threads,
        )
        frames.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "source_model": source_model,
                    "embedding": name,
                    "image_id": images.image_ids[rows],
                    "label": labels,
                    "class_name": images.class_names[labels],
                    "x": xy[:, 0],
                    "y": xy[:, 1],
                }
            )
        )
    if not frames:
        raise ValueError(
            f"transfer.maps.embeddings {list(settings.embeddings)}: none is in the embedding "
            f"(its layers: {list(pd.unique(feature_layers))})"
        )
    return pd.concat(frames, ignore_index=True)[list(MAP_COLUMNS)]


def _warn_absent(name: str, feature_layers: np.ndarray, source_model: str) -> None:
    layers = [str(layer) for layer in pd.unique(feature_layers)]
    shown = layers if len(layers) <= 24 else [*layers[:12], "...", *layers[-12:]]
    logger.warning(
        "Embedding maps: transfer.maps.embeddings names layer %s, which this embedding of %s "
        "lacks: no map drawn for it. Name its own layers there (%s) in conf/local/parameters.yml "
        "or with --params, or set it to `%s` (its middle and last spatial layers)",
        name,
        source_model,
        ", ".join(shown),
        DEFAULT_MAP_EMBEDDINGS,
    )


def _check_known(embeddings: Sequence[str], known_layers: Sequence[str]) -> None:
    """Every listed embedding is the full network, the FNE or one of the source model's layers."""
    known = set(known_layers) | {FULL_NETWORK, FNE}
    unknown = [name for name in embeddings if name not in known]
    if unknown:
        raise ValueError(
            f"transfer.maps.embeddings: unknown embedding(s) {unknown}; known: "
            f"{FULL_NETWORK}, {FNE} and the layers {list(known_layers)}"
        )
