"""Top features per class, shown through the image patches that activate them most.

The paper's Figures 2, 3, 4 and 7: for a class, the features with the highest DKS (presence) and
the lowest DKS (absence), each drawn as the 9 patches of a reference pool of images with the
highest activation of that feature, cropped to the feature's receptive field.

Receptive fields are derived from the network's layer stack (`receptive_fields`), the top
activations are found in one pass over the pool for every requested feature
(`top_activations`), and the figures are drawn with Matplotlib's object API so that no global
pyplot state is left behind. Keras is imported only by the functions that run a network.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cnn_feature_behavior.extraction.crops import image_crops
from cnn_feature_behavior.ingestion.image_checks import outside_raw_dir

logger = logging.getLogger(__name__)

POOL_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# Two greys in 8-pixel squares mark the part of a receptive field outside the image: a plain
# colour could be mistaken for image content.
PADDING_GREYS = (96, 160)
PADDING_SQUARE = 8
PATCHES_PER_FEATURE = 9  # the paper's 3 x 3 grid

_FEATURE_NAME = re.compile(r"^(?P<layer>[A-Za-z0-9_]+)/n(?P<filter>\d+)$")


# --------------------------------------------------------------------------- receptive fields


@dataclass(frozen=True)
class SpatialOp:
    """One layer that changes spatial geometry: a square convolution or pooling window."""

    name: str
    kernel: int
    stride: int
    padding: str  # "same" or "valid", with TensorFlow's placement of "same" padding


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's units look in the input image, along one axis (fields are square).

    Unit `i` of the layer's map sees input pixels `first + i * jump` up to
    `first + i * jump + size - 1`; `first` is negative where unit 0 reaches into the padding.
    """

    size: int
    jump: int
    first: int
    map_size: int

    def span(self, index: int) -> tuple[int, int]:
        """Half-open input pixel range [start, stop) seen by unit `index`."""
        if not 0 <= index < self.map_size:
            raise IndexError(f"unit {index} outside a map of {self.map_size} units")
        start = self.first + index * self.jump
        return start, start + self.size


def receptive_fields(ops: Sequence[SpatialOp], input_size: int) -> dict[str, ReceptiveField]:
    """Receptive field of every op's output units, for a square input of `input_size` pixels.

    Standard recursion: each op widens the field by `(kernel - 1)` of the incoming jumps,
    multiplies the jump by its stride, and moves the first unit's start back by its left padding.
    """
    size, jump, first, map_size = 1, 1, 0, input_size
    fields_by_name: dict[str, ReceptiveField] = {}
    for op in ops:
        if op.padding == "same":
            out = math.ceil(map_size / op.stride)
            pad_total = max((out - 1) * op.stride + op.kernel - map_size, 0)
            pad_left = pad_total // 2  # TensorFlow puts the odd pixel on the right/bottom
        elif op.padding == "valid":
            out = (map_size - op.kernel) // op.stride + 1
            pad_left = 0
        else:
            raise ValueError(f"layer {op.name!r}: padding {op.padding!r} is not 'same' or 'valid'")
        if out < 1:
            raise ValueError(
                f"layer {op.name!r}: a {map_size}-unit input is smaller than its {op.kernel} window"
            )
        first -= pad_left * jump
        size += (op.kernel - 1) * jump
        jump *= op.stride
        map_size = out
        fields_by_name[op.name] = ReceptiveField(size=size, jump=jump, first=first, map_size=out)
    return fields_by_name


# Layers that leave every position where it is; anything else unknown is refused rather than
# silently given a wrong field.
_GEOMETRY_NEUTRAL = frozenset(
    {
        "InputLayer",
        "Activation",
        "ReLU",
        "BatchNormalization",
        "Dropout",
        "Rescaling",
        "Normalization",
        "LayerNormalization",
    }
)
_NON_SPATIAL = frozenset({"Flatten", "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D"})


def spatial_ops_from_keras(model: Any) -> list[SpatialOp]:
    """The geometry of a Keras conv net, up to its first non-spatial layer.

    The net must be a chain of layers, each fed by the one before, where a residual sum (`Add`)
    may add an earlier output of the chain (an identity shortcut, as in EfficientNet-Lite's
    blocks): the sum's field is that of the chain, which holds the shortcut's. A branch (a
    projection shortcut, Inception's parallel paths) is refused rather than given a wrong field.
    """
    return [op for op in _walk_chain(model) if op is not None]


def fields_by_layer(model: Any, input_size: int) -> dict[str, ReceptiveField]:
    """The receptive field of every layer of the chain (`spatial_ops_from_keras`), layers that
    leave the geometry as it is (batch norms, activations, residual sums) included."""
    walked = list(_walk_chain(model, with_names=True))
    fields = receptive_fields([op for _, op in walked if op is not None], input_size)
    found: dict[str, ReceptiveField] = {}
    current = None
    for name, op in walked:
        current = fields[op.name] if op is not None else current
        if current is not None:
            found[name] = current
    return found


def _walk_chain(model: Any, with_names: bool = False):
    """Each layer of the chain, in order, with its SpatialOp (None for a neutral layer)."""
    head = None
    on_chain: set[int] = set()
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _NON_SPATIAL:
            break
        if kind != "InputLayer":
            _check_on_chain(layer, kind, head, on_chain)
        head = id(layer.output)
        on_chain.add(head)
        op = _spatial_op(layer, kind)
        yield (layer.name, op) if with_names else op


def _check_on_chain(layer: Any, kind: str, head: int | None, on_chain: set[int]) -> None:
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    ids = [id(tensor) for tensor in inputs]
    chained = ids == [head] or (kind == "Add" and head in ids and all(i in on_chain for i in ids))
    if not chained:
        raise ValueError(
            f"layer {layer.name!r} ({kind}) is not fed by the layer before it (a branch): "
            "receptive fields are computed for a chain of layers with identity shortcuts only"
        )


def _spatial_op(layer: Any, kind: str) -> SpatialOp | None:
    if kind in _GEOMETRY_NEUTRAL or kind == "Add":
        return None
    if kind in {"Conv2D", "DepthwiseConv2D"}:
        window, strides = layer.kernel_size, layer.strides
        if tuple(layer.dilation_rate) != (1, 1):
            raise ValueError(f"layer {layer.name!r}: dilated convolutions are not supported")
    elif kind in {"MaxPooling2D", "AveragePooling2D"}:
        window, strides = layer.pool_size, layer.strides
    else:
        raise ValueError(
            f"layer {layer.name!r} ({kind}): unknown effect on receptive fields; supported are "
            f"Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, Add (an identity "
            f"shortcut) and {sorted(_GEOMETRY_NEUTRAL)}"
        )
    if window[0] != window[1] or strides[0] != strides[1]:
        raise ValueError(f"layer {layer.name!r}: non-square window {window} / stride {strides}")
    return SpatialOp(layer.name, int(window[0]), int(strides[0]), layer.padding)


def crop_receptive_field(image: np.ndarray, field: ReceptiveField, y: int, x: int) -> np.ndarray:
    """The `field.size` square of `image` seen by unit (y, x); outside the image: a checkerboard."""
    top, bottom = field.span(y)
    left, right = field.span(x)
    patch = _checkerboard(field.size, image.shape[2])
    height, width = image.shape[:2]
    src_top, src_bottom = max(top, 0), min(bottom, height)
    src_left, src_right = max(left, 0), min(right, width)
    if src_top < src_bottom and src_left < src_right:
        patch[src_top - top : src_bottom - top, src_left - left : src_right - left] = image[
            src_top:src_bottom, src_left:src_right
        ]
    return patch


def _checkerboard(size: int, channels: int) -> np.ndarray:
    rows, cols = np.indices((size, size)) // PADDING_SQUARE
    board = np.where((rows + cols) % 2 == 0, *PADDING_GREYS).astype(np.uint8)
    return np.repeat(board[:, :, None], channels, axis=2)


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


# --------------------------------------------------------------------------- drawing


def patch_mosaic(
    patches: Sequence[np.ndarray], grid: int = 3, tile: int = 64, gap: int = 3
) -> np.ndarray:
    """`grid` x `grid` patches, each resized to `tile` pixels, on white; missing tiles stay white."""
    if len(patches) > grid * grid:
        raise ValueError(f"{len(patches)} patches do not fit a {grid}x{grid} grid")
    side = grid * tile + (grid + 1) * gap
    mosaic = np.full((side, side, 3), 255, dtype=np.uint8)
    for i, patch in enumerate(patches):
        row, col = divmod(i, grid)
        # Small fields (3 pixels for conv1_1) are enlarged without smoothing so the pixels show.
        resample = Image.Resampling.NEAREST if patch.shape[0] < tile else Image.Resampling.BILINEAR
        resized = np.asarray(Image.fromarray(patch).resize((tile, tile), resample))
        top, left = gap + row * (tile + gap), gap + col * (tile + gap)
        mosaic[top : top + tile, left : left + tile] = resized
    return mosaic


@dataclass(frozen=True)
class FeatureTile:
    """One feature as drawn: its name, DKS for the class, patch mosaic, and whether it is fc."""

    feature: str
    dks: float
    mosaic: np.ndarray
    whole_image: bool


def class_figure(
    class_name: str,
    presence: Sequence[FeatureTile],
    absence: Sequence[FeatureTile],
    samples: Sequence[np.ndarray],
    source_model: str,
    pool_description: str,
) -> Figure:
    """Sample images of the class, then its presence row and its absence row of feature tiles."""
    rows = [
        ("class samples", [(None, image) for image in samples]),
        ("presence\n(highest DKS)", [(tile, tile.mosaic) for tile in presence]),
        ("absence\n(lowest DKS)", [(tile, tile.mosaic) for tile in absence]),
    ]
    n_cols = max(1, *(len(items) for _, items in rows))
    figure = Figure(figsize=(2.3 * n_cols + 0.8, 8.6), layout="constrained")
    FigureCanvasAgg(figure)  # its own canvas, outside pyplot's registry
    axes = figure.subplots(len(rows), n_cols, squeeze=False)
    for row_axes, (label, items) in zip(axes, rows):
        for column, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(items):
                ax.set_axis_off()
                continue
            tile, image = items[column]
            ax.imshow(image)
            if tile is not None:
                suffix = "\n(whole image)" if tile.whole_image else ""
                ax.set_title(f"{tile.feature}\nDKS {tile.dks:+.4f}{suffix}", fontsize=9)
        row_axes[0].set_ylabel(label, fontsize=10)
    figure.suptitle(f"Top features of class '{class_name}' ({source_model})", fontsize=12)
    figure.supxlabel(
        f"Each feature: the {PATCHES_PER_FEATURE} reference images that activate it most, at most "
        "one patch per image, cropped to its receptive field (checkerboard: field outside the "
        f"image;\nfc neurons have no spatial map, so the whole image is shown). Reference pool: "
        f"{pool_description}.",
        fontsize=8,
    )
    return figure


# --------------------------------------------------------------------------- the report node


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


def top_feature_patches_figures(
    dks: pd.DataFrame,
    image_index: pd.DataFrame,
    raw_dir: str,
    source_model: str,
    source_models: dict[str, Any],
    visualisation_params: dict[str, Any],
    feature_extraction_params: dict[str, Any],
) -> dict[str, Figure]:
    """One figure per chosen class, `top_features_<class>.png`: its top presence and absence
    features, each as the 9 reference-pool patches that activate it most.

    Pool images and class samples are centre-cropped with the extraction's `resize` and `crop`.
    """
    settings = VisualisationSettings.from_params(visualisation_params)
    missing = [key for key in ("resize", "crop") if key not in feature_extraction_params]
    if missing:
        raise ValueError(f"feature_extraction parameters lack {missing}, needed to crop the pool")
    geometry = (feature_extraction_params["resize"], feature_extraction_params["crop"])
    missing = [column for column in ("path", "class_name") if column not in image_index.columns]
    if missing:
        raise ValueError(f"image_index lacks columns {missing}; it has {list(image_index.columns)}")
    classes = chosen_classes(dks, settings)
    file_names = figure_file_names(classes)
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
    pool_description = f"{len(pool)} images from {pool_source}"
    if len(pool) < PATCHES_PER_FEATURE:
        logger.warning(
            "Reference pool has %d images: features show fewer than %d patches",
            len(pool),
            PATCHES_PER_FEATURE,
        )
    patches = feature_patches(pool, features, source_model, source_models, settings.batch_size)
    mosaics = {
        feature: (patch_mosaic(p), whole_image) for feature, (p, whole_image) in patches.items()
    }

    def tiles(chosen: pd.Series) -> list[FeatureTile]:
        return [FeatureTile(f, float(v), *mosaics[FeatureRef.parse(f)]) for f, v in chosen.items()]

    figures: dict[str, Figure] = {}
    for name, file_name in zip(classes, file_names):
        presence, absence = selections[name]
        samples = class_sample_images(image_index, raw_dir, name, settings.sample_images, geometry)
        figures[file_name] = class_figure(
            name, tiles(presence), tiles(absence), samples, source_model, pool_description
        )
    logger.info(
        "Top-feature figures for %d classes, %d features, from %s",
        len(figures),
        len(features),
        pool_description,
    )
    return figures


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


def figure_file_names(classes: Sequence[str]) -> list[str]:
    """`top_features_<class>.png`, the class name reduced to characters safe in file names."""
    names = [f"top_features_{_file_safe(name)}.png" for name in classes]
    if len(set(names)) < len(names):
        clashes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"classes {list(classes)} give the same figure file names {clashes}")
    return names


def feature_patches(
    pool: np.ndarray,
    features: Sequence[FeatureRef],
    source_model: str,
    source_models: dict[str, Any],
    batch_size: int,
    k: int = PATCHES_PER_FEATURE,
) -> dict[FeatureRef, tuple[list[np.ndarray], bool]]:
    """Each feature's top-`k` pool patches and whether they are whole images (head neurons, or
    a spatial layer whose receptive field cannot be computed: see `spatial_ops_from_keras`)."""
    from cnn_feature_behavior.extraction.source_models import load_backbone

    backbone = load_backbone(source_model, source_models)
    layers = sorted({feature.layer for feature in features})
    run = keras_activations(backbone, layers, source_model, source_models)
    batches = (pool[start : start + batch_size] for start in range(0, len(pool), batch_size))
    tops = top_activations(batches, run, features, k)
    fields = _FieldsOf(backbone, pool.shape[1], source_model)
    patches = {}
    for feature, activations in tops.items():
        field = None if activations[0].y is None else fields.of(feature.layer)
        if field is None:  # a head neuron (no spatial map) sees the whole image
            patches[feature] = ([pool[top.pool_index] for top in activations], True)
            continue
        patches[feature] = (
            [crop_receptive_field(pool[t.pool_index], field, t.y, t.x) for t in activations],
            False,
        )
    return patches


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


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"
