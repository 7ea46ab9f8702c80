"""The full-network embedding: crops of each image through one multi-output VGG, streamed in shards.

One Keras model taps every selected layer: conv outputs are averaged over space inside the model
(one value per filter, after the layer's ReLU), fc outputs are taken as they are. Images are
decoded and cropped by a thread pool while the model runs on the previous batch; a batch holds the
crops of whole images, always padded to the same number of crops so that every batch runs the same
computation. An image's feature vector is the mean of its crops' vectors.

Images that cannot be decoded are found before any shard is planned, and left out: the
embedding's rows are the image index's rows minus the extraction rejects, in index order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cnn_feature_behavior.extraction.crops import image_crops, load_rgb
from cnn_feature_behavior.extraction.embedding_store import EmbeddingPlan, ShardSpec
from cnn_feature_behavior.extraction.source_models import keras_layer_name, preprocess

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def build_extractor(backbone: keras.Model, layers: Sequence[str]) -> keras.Model:
    """One model whose outputs are the given layers (paper names): conv ones averaged over space."""
    outputs = []
    for layer in layers:
        tensor = backbone.get_layer(keras_layer_name(layer)).output
        if len(tensor.shape) == 4:
            tensor = keras.layers.GlobalAveragePooling2D(name=f"{layer}_spatial_mean")(tensor)
        outputs.append(tensor)
    return keras.Model(backbone.inputs, outputs, name=f"{backbone.name}_features")


def feature_manifest(extractor: keras.Model, layers: Sequence[str]) -> pd.DataFrame:
    """One row per embedding column: `feature` (`conv4_3/n458`), `layer`, `filter`, `layer_kind`."""
    rows = []
    for layer, output in zip(layers, extractor.outputs, strict=True):
        kind = "conv" if layer.startswith("conv") else "fc"
        rows += [(f"{layer}/n{unit}", layer, unit, kind) for unit in range(int(output.shape[-1]))]
    manifest = pd.DataFrame(rows, columns=["feature", "layer", "filter", "layer_kind"])
    return manifest.astype({"filter": "int64"})


def weights_digest(model: keras.Model) -> str:
    """A short hash of the model's weights (every bias and the first kernel) to tell weight sets apart."""
    digest = hashlib.sha256()
    first_kernel_done = False
    for layer in model.layers:
        for variable in layer.weights:
            value = np.asarray(variable)
            digest.update(f"{layer.name}{value.shape}".encode())
            if value.ndim == 1 or not first_kernel_done:
                digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
                first_kernel_done = first_kernel_done or value.ndim > 1
    return digest.hexdigest()[:16]


def find_undecodable(paths: Sequence[Path], workers: int) -> dict[Path, str]:
    """The images that cannot be decoded, with the reason, checked in parallel."""

    def reason(path: Path) -> str | None:
        try:
            load_rgb(path)
        except Exception as error:  # noqa: BLE001 - any decoder failure rejects the image, with its reason
            return f"cannot decode: {type(error).__name__}: {error}"
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(reason, paths))
    return {path: why for path, why in zip(paths, reasons) if why is not None}


def plan_shards(image_ids: Sequence[str], shard_size: int) -> tuple[ShardSpec, ...]:
    """Consecutive runs of `shard_size` image ids, named shard-00000, shard-00001, ..."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    return tuple(
        ShardSpec(f"shard-{number:05d}", tuple(image_ids[start : start + shard_size]))
        for number, start in enumerate(range(0, len(image_ids), shard_size))
    )


def plan_fingerprint(content: dict[str, Any]) -> str:
    """A hash of everything that determines the embedding's values."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def prefetched(
    executor: Executor, function: Callable[[T], R], items: Iterable[T], depth: int
) -> Iterator[R]:
    """`map(function, items)` run ahead on `executor`, at most `depth` results in flight (bounded memory)."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(executor.submit(function, item))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class CropStream:
    """Computes shards of the embedding: decode and crop in threads, one forward pass per batch."""

    def __init__(
        self,
        extractor: keras.Model,
        source_model_spec: dict[str, Any],
        paths: dict[str, Path],
        *,
        resize: int,
        crop: int,
        n_crops: int,
        batch_size: int,
        workers: int,
    ) -> None:
        self.extractor = extractor
        self.spec = source_model_spec
        self.paths = paths
        self.resize, self.crop, self.n_crops = resize, crop, n_crops
        self.images_per_batch = max(1, batch_size // n_crops)
        self.workers = workers

    def __call__(self, shards: Sequence[ShardSpec]) -> Iterator[tuple[ShardSpec, np.ndarray]]:
        image_ids = [image_id for shard in shards for image_id in shard.image_ids]
        depth = 2 * self.images_per_batch + self.workers
        with (
            ThreadPoolExecutor(max_workers=self.workers) as pool,
            tqdm(
                total=len(image_ids),
                unit="img",
                desc="feature extraction",
                smoothing=0.1,
                disable=not image_ids,
            ) as progress,
        ):
            # One decode stream across shard boundaries, so the model never waits at a shard's start.
            crops = prefetched(pool, self._crops_of, image_ids, depth)
            for shard in shards:
                yield shard, self._shard_features(shard, crops, progress)

    def _shard_features(
        self, shard: ShardSpec, crops: Iterator[np.ndarray], progress: tqdm
    ) -> np.ndarray:
        rows = []
        for start in range(0, len(shard.image_ids), self.images_per_batch):
            n_images = min(self.images_per_batch, len(shard.image_ids) - start)
            batch = np.concatenate([next(crops) for _ in range(n_images)])
            rows.append(self.image_features(batch, n_images))
            progress.update(n_images)
        return np.concatenate(rows) if rows else np.zeros((0, self.n_features), np.float32)

    @property
    def n_features(self) -> int:
        return sum(int(output.shape[-1]) for output in self.extractor.outputs)

    def image_features(self, crops_uint8: np.ndarray, n_images: int) -> np.ndarray:
        """Mean crop vector of each image, from its `n_crops` consecutive crops (float32)."""
        full = self.images_per_batch * self.n_crops
        inputs = preprocess(crops_uint8, self.spec)
        padding = full - len(inputs)
        if padding:
            inputs = np.concatenate([inputs, np.zeros((padding, *inputs.shape[1:]), inputs.dtype)])
        outputs = self.extractor.predict_on_batch(inputs)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        per_crop = np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs], axis=1)[
            : len(crops_uint8)
        ]
        per_image = per_crop.reshape(n_images, self.n_crops, -1).astype(np.float64).mean(axis=1)
        return per_image.astype(np.float32)

    def _crops_of(self, image_id: str) -> np.ndarray:
        path = self.paths[image_id]
        try:
            return image_crops(path, self.resize, self.crop, self.n_crops)
        except Exception as error:
            raise RuntimeError(
                f"{path} decoded when the run started but fails now ({type(error).__name__}: {error}); "
                "was it changed? Run again: finished shards are kept"
            ) from error


def plan_embedding(
    image_index: pd.DataFrame,
    raw_dir: Path,
    backbone: keras.Model,
    source_model_name: str,
    source_model_spec: dict[str, Any],
    layers: Sequence[str],
    *,
    n_crops: int,
    resize: int,
    crop: int,
    batch_size: int,
    shard_size: int,
    workers: int,
) -> tuple[EmbeddingPlan, pd.DataFrame, pd.DataFrame]:
    """The embedding's plan, its feature manifest and the extraction rejects."""
    _check_image_index(image_index)
    extractor = build_extractor(backbone, layers)
    if extractor.inputs[0].shape[1] not in (None, crop):
        raise ValueError(
            f"source model {source_model_name} has fc layers and takes {extractor.inputs[0].shape[1]}-pixel "
            f"crops, but crop is {crop}"
        )
    manifest = feature_manifest(extractor, layers)
    paths = {
        image_id: raw_dir / path
        for image_id, path in zip(image_index["image_id"], image_index["path"])
    }
    undecodable = find_undecodable(list(paths.values()), workers)
    rejects = pd.DataFrame(
        {
            "path": [str(p) for p in undecodable],
            "reason": list(undecodable.values()),
            "stage": "feature_extraction",
        },
        columns=["path", "reason", "stage"],
    )
    kept_ids = [image_id for image_id, path in paths.items() if path not in undecodable]
    logger.info(
        "Feature extraction: %d images, %d rejected (undecodable), %d features (%s), %d crop(s) per image",
        len(paths),
        len(undecodable),
        len(manifest),
        ", ".join(layers),
        n_crops,
    )
    for path, reason in undecodable.items():
        logger.warning("Rejected %s: %s", path, reason)
    description = {
        "source_model": source_model_name,
        "spec": source_model_spec,
        "weights": weights_digest(backbone),
        "layers": list(layers),
        "crops": n_crops,
        "resize": resize,
        "crop": crop,
        "batch_size": batch_size,
        "raw_dir": str(raw_dir),
    }
    fingerprint = plan_fingerprint(
        {**description, "images": [(i, str(paths[i])) for i in kept_ids]}
    )
    stream = CropStream(
        extractor,
        source_model_spec,
        {i: paths[i] for i in kept_ids},
        resize=resize,
        crop=crop,
        n_crops=n_crops,
        batch_size=batch_size,
        workers=workers,
    )
    plan = EmbeddingPlan(
        fingerprint=fingerprint,
        columns=tuple(manifest["feature"]),
        shards=plan_shards(kept_ids, shard_size),
        compute=stream,
        description=description,
    )
    return plan, manifest, rejects


def _check_image_index(image_index: pd.DataFrame) -> None:
    missing = {"image_id", "path"} - set(image_index.columns)
    if missing:
        raise ValueError(f"image_index lacks columns {sorted(missing)}")
    duplicated = image_index["image_id"][image_index["image_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"image_index repeats image ids, e.g. {duplicated.iloc[0]!r} ({len(duplicated)} repeats)"
        )
