"""The full-network embedding: crops of each image through one multi-output VGG, streamed in shards.

One Keras model taps every selected layer: conv outputs are averaged over space inside the model
(one value per filter, after the layer's ReLU), fc outputs are taken as they are. Images are
decoded and cropped by a thread pool, at idle priority (`decode_priority`), while the model
runs on the previous batch; a batch holds the crops of whole images, always padded to the same
number of crops so that every batch runs the same computation. An image's feature vector is the
mean of its crops' vectors.

Shards are planned over every indexed image and each image is decoded once, by the computation
of its shard: one whose bytes cannot be decoded (or cropped) is left out of the shard's rows and
recorded in the shard with the reason, so the embedding's rows are the image index's rows minus
the extraction rejects, in index order, and `extraction_rejects` is read back from the shards. A
file the storage cannot give (missing, an I/O error) is no reject: it fails its shard, which a
rerun (or Dask's retry) computes again. Each shard's fingerprint covers the settings, the
extraction code's version and its images' files (docs/reliability.md).

The batches of a shard depend on the shard alone (its usable images, `images_per_batch` at a time,
the last batch padded), so a shard computes to the same bits in this process (`executor: local`)
and on a Dask worker (`executor: dask`: one task per shard, each worker process loads the model
once and keeps it, and writes the shard into the shared embedding folder itself).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np
import pandas as pd
import PIL
from tqdm.auto import tqdm

from cnn_feature_behavior.device import initialise_tensorflow_devices
from cnn_feature_behavior.executors import check_executor, dask_client
from cnn_feature_behavior.extraction.crops import (
    CROP_COUNTS,
    crop_geometry,
    crops_of_image,
    decode_rgb,
)
from cnn_feature_behavior.extraction.embedding_store import (
    EmbeddingPlan,
    Reject,
    ShardSpec,
    write_shard,
)
from cnn_feature_behavior.extraction.layer_kinds import HEAD, SPATIAL
from cnn_feature_behavior.extraction.source_models import load_backbone, preprocess
from cnn_feature_behavior.extraction.source_models.taps import layer_output

logger = logging.getLogger(__name__)

# Part of every embedding's fingerprint: bump it with any change to decoding, cropping, the layer
# taps or crop averaging that changes an embedding's values, so that old shards are recomputed.
# 2: the one centre crop is resampled from its own region (`crops.centre_crop`), not cut from the
# whole resized image: values differ by a level or two here and there.
EXTRACTION_CODE_VERSION = 2
# What identifies an image file in the fingerprint: its size and modification time, or its content.
FINGERPRINT_MODES = ("stat", "content")

# How often Dask tries a failed shard task again (a worker's death is counted apart, by Dask).
SHARD_RETRIES = 2

T = TypeVar("T")
R = TypeVar("R")


SPATIAL_MEAN_SUFFIX = "_spatial_mean"


def build_extractor(backbone: keras.Model, layers: Sequence[str]) -> keras.Model:
    """One model whose outputs are the given layers (`taps.layer_output` names): feature maps
    averaged over space, 1-D layers as they are."""
    outputs = []
    for layer in layers:
        tensor = layer_output(backbone, layer)
        if len(tensor.shape) == 4:
            tensor = keras.layers.GlobalAveragePooling2D(name=f"{layer}{SPATIAL_MEAN_SUFFIX}")(
                tensor
            )
        elif len(tensor.shape) != 2:
            raise ValueError(
                f"layer {layer} of {backbone.name} outputs {tuple(tensor.shape)}: neither feature "
                "maps (batch, height, width, channels) nor a vector per image"
            )
        outputs.append(tensor)
    return keras.Model(backbone.inputs, outputs, name=f"{backbone.name}_features")


def feature_manifest(extractor: keras.Model, layers: Sequence[str]) -> pd.DataFrame:
    """One row per embedding column: `feature` (`conv4_3/n458`), `layer`, `filter`, `layer_kind`
    (`spatial` for layers averaged over space, `head` for 1-D ones: `extraction.layer_kinds`)."""
    rows = []
    pooled = {layer.name for layer in extractor.layers}
    for layer, output in zip(layers, extractor.outputs, strict=True):
        kind = SPATIAL if f"{layer}{SPATIAL_MEAN_SUFFIX}" in pooled else HEAD
        rows += [(f"{layer}/n{unit}", layer, unit, kind) for unit in range(int(output.shape[-1]))]
    manifest = pd.DataFrame(rows, columns=["feature", "layer", "filter", "layer_kind"])
    return manifest.astype({"filter": "int64"})


def weights_digest(model: keras.Model) -> str:
    """A short hash of the model's weights (every bias and the first kernel) to tell weight sets apart."""
    digest = hashlib.sha256()
    first_kernel_done = False
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(int(n) for n in variable.shape)
            digest.update(f"{layer.name}{shape}".encode())
            # Only what is hashed is copied out: VGG16's fc6 kernel alone is 400 MB.
            if len(shape) == 1 or not first_kernel_done:
                value = variable.numpy()  # a third faster than np.asarray, same values
                digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
                first_kernel_done = first_kernel_done or len(shape) > 1
    return digest.hexdigest()[:16]


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


# The decoding threads' priority. `idle` (Linux SCHED_IDLE): they run on CPU time the model
# leaves unused, so they never slow it down, and when the model waits for images its threads
# sleep and decoding gets the CPU all the same (Lite0, 1 crop, 2 cores: pipeline / bare 0.91
# against 0.87 to 0.89 at niceness 10 and 0.83 at the model's priority). On a machine busy with
# other work they would also yield to that work: `normal` keeps the model's priority.
DECODE_PRIORITIES = ("idle", "normal")


def lower_thread_priority(priority: str = "idle") -> None:
    """Put the calling thread in Linux's SCHED_IDLE class for `idle` (elsewhere nothing)."""
    if priority != "idle" or not sys.platform.startswith("linux"):
        return  # elsewhere a thread id would be taken for the whole process
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
    except OSError as error:  # a priority is an optimisation, never a reason to fail
        logger.debug("Decoding thread keeps its priority: %s", error)


_EXTRACTORS: weakref.WeakKeyDictionary[keras.Model, dict[tuple[str, ...], keras.Model]] = (
    weakref.WeakKeyDictionary()
)


def cached_extractor(backbone: keras.Model, layers: Sequence[str]) -> keras.Model:
    """`build_extractor(backbone, layers)`, built once per backbone and layers in this process.

    Reusing the model reuses its traced forward pass: a new model is traced again on its first
    batch, seconds for VGG16, paid by every extraction of a process that plans several.
    """
    by_layers = _EXTRACTORS.setdefault(backbone, {})
    key = tuple(layers)
    if key not in by_layers:
        by_layers[key] = build_extractor(backbone, layers)
    return by_layers[key]


@dataclass(frozen=True)
class ModelSource:
    """Where a worker process loads the source model from by itself: small and picklable.

    `source_models` is the `source_models` parameter; relative weights paths are taken from
    `project_root`, which must be the same path on every worker (shared storage).
    """

    name: str
    source_models: dict[str, Any]
    project_root: str


@dataclass(frozen=True)
class ShardJob:
    """Everything a Dask task needs besides its shard: settings and how to load the model."""

    columns: tuple[str, ...]
    model: ModelSource
    spec: dict[str, Any]
    layers: tuple[str, ...]
    weights_digest: str
    settings: ExtractionSettings
    # Relative image paths are opened from here, as the planning process would.
    working_dir: str
    # Every worker checks that it sees it before its first shard.
    raw_dir: str = "."

    def stream_key(self) -> str:
        """What the per-process model cache is keyed by: the model and how crops are computed,
        not the shard layout."""
        s = self.settings
        return plan_fingerprint(
            {
                "model": self.model,
                "spec": self.spec,
                "layers": self.layers,
                "weights": self.weights_digest,
                "crops": (s.n_crops, s.resize, s.crop, s.batch_size, s.decode_workers),
            }
        )


class ImageReadError(OSError):
    """An image file the storage could not give: its shard fails (and is retried), no reject.

    Built by `image_read_error`; plain OSError arguments, so that it pickles (Dask sends it back).
    """


def image_read_error(path: Path, error: OSError) -> ImageReadError:
    return ImageReadError(
        error.errno,
        f"{path}: cannot read the image file ({type(error).__name__}: {error.strerror or error}); "
        "its shard is not written: check that raw_dir is reachable and run again",
    )


class CropStream:
    """Computes shards of the embedding: decode and crop in threads, one forward pass per batch."""

    def __init__(
        self,
        extractor: keras.Model,
        source_model_spec: dict[str, Any],
        paths: Mapping[str, Path],
        settings: ExtractionSettings,
        show_progress: bool = True,
    ) -> None:
        self.extractor = extractor
        self.spec = source_model_spec
        self.paths = paths
        self.resize, self.crop, self.n_crops = settings.resize, settings.crop, settings.n_crops
        self.images_per_batch = max(1, settings.batch_size // settings.n_crops)
        self.workers = settings.decode_workers
        self.decode_priority = settings.decode_priority
        self.show_progress = show_progress
        self.n_features = sum(int(output.shape[-1]) for output in extractor.outputs)

    def __call__(
        self, shards: Sequence[ShardSpec], paths: Mapping[str, Path] | None = None
    ) -> Iterator[tuple[ShardSpec, np.ndarray, list[Reject]]]:
        """For each shard in order: the shard, its usable images' features, its rejects."""
        paths = self.paths if paths is None else paths
        image_ids = [image_id for shard in shards for image_id in shard.image_ids]
        depth = 2 * self.images_per_batch + self.workers
        with (
            ThreadPoolExecutor(
                self.workers, initializer=lower_thread_priority, initargs=(self.decode_priority,)
            ) as pool,
            tqdm(
                total=len(image_ids),
                unit="img",
                desc="feature extraction",
                smoothing=0.1,
                disable=not image_ids or not self.show_progress,
            ) as progress,
        ):
            # One decode stream across shard boundaries, so the model never waits at a shard's start.
            crops = prefetched(pool, self.crops_or_reason, [paths[i] for i in image_ids], depth)
            for shard in shards:
                yield self._shard_features(shard, paths, crops, progress)

    def _shard_features(
        self,
        shard: ShardSpec,
        paths: Mapping[str, Path],
        crops: Iterator[np.ndarray | str],
        progress: tqdm,
    ) -> tuple[ShardSpec, np.ndarray, list[Reject]]:
        rows: list[np.ndarray] = []
        rejects: list[Reject] = []
        batch: list[np.ndarray] = []
        for position, image_id in enumerate(shard.image_ids, start=1):
            image_inputs = next(crops)
            if isinstance(image_inputs, str):
                rejects.append(Reject(image_id, str(paths[image_id]), image_inputs))
                logger.warning("Rejected %s: %s", paths[image_id], image_inputs)
            else:
                batch.append(image_inputs)
            if batch and (len(batch) == self.images_per_batch or position == len(shard.image_ids)):
                rows.append(self.image_features(np.concatenate(batch), len(batch)))
                batch = []
            progress.update(1)
        features = np.concatenate(rows) if rows else np.zeros((0, self.n_features), np.float32)
        return shard, features, rejects

    def image_features(self, inputs: np.ndarray, n_images: int) -> np.ndarray:
        """Mean crop vector of each image, from its `n_crops` consecutive preprocessed crops
        (`crops_or_reason`), as float32."""
        full = self.images_per_batch * self.n_crops
        given = len(inputs)
        if full > given:
            padding = np.zeros((full - given, *inputs.shape[1:]), inputs.dtype)
            inputs = np.concatenate([inputs, padding])
        outputs = self.extractor.predict_on_batch(inputs)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        per_crop = np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs], axis=1)[
            :given
        ]
        if self.n_crops == 1:
            return per_crop
        per_image = per_crop.reshape(n_images, self.n_crops, -1).astype(np.float64).mean(axis=1)
        return per_image.astype(np.float32)

    def crops_or_reason(self, path: Path) -> np.ndarray | str:
        """The image's crops as network inputs, or why it cannot be used: it is decoded here and
        nowhere else.

        Only a failure to decode the file's own bytes is a reason (a reject, kept by reruns). A
        file the storage cannot give (missing, unreadable, an I/O error: an OSError with an errno)
        raises ImageReadError, which fails the shard: it is not written and a rerun retries it.
        """
        try:
            image = decode_rgb(path)
        except OSError as error:
            if error.errno is not None:  # PIL's decoder errors are OSErrors without one
                raise image_read_error(path, error) from error
            return f"cannot decode: {type(error).__name__}: {error}"
        except Exception as error:  # noqa: BLE001 - any decoder failure rejects the image, with its reason
            return f"cannot decode: {type(error).__name__}: {error}"
        try:
            crops = crops_of_image(image, self.resize, self.crop, self.n_crops)
        except Exception as error:  # noqa: BLE001 - e.g. an empty image: rejected, with its reason
            return f"cannot crop: {type(error).__name__}: {error}"
        # Here, in a decoding thread, not between the model's forward passes: preprocessing is
        # elementwise, so an image's inputs are the same as when its batch was preprocessed.
        return preprocess(crops, self.spec)


_WORKER_STREAM: dict[str, CropStream] = {}
_WORKER_LOCK = threading.Lock()


def worker_stream(job: ShardJob) -> CropStream:
    """This process's stream for `job`'s model and settings, the model loaded on first use only.

    One stream is kept per process (a new job's model replaces the previous one), so a long-lived
    worker serving several runs holds one model, not one per run.
    """
    key = job.stream_key()
    with _WORKER_LOCK:
        if key not in _WORKER_STREAM:
            _WORKER_STREAM.clear()
            # A Dask worker is a process of its own: without this, TensorFlow's first device
            # query prints the CUDA error line on every GPU-less worker.
            initialise_tensorflow_devices()
            backbone = load_backbone(
                job.model.name, job.model.source_models, Path(job.model.project_root)
            )
            digest = weights_digest(backbone)
            if digest != job.weights_digest:
                raise RuntimeError(
                    f"source model {job.model.name}: this worker loaded other weights (digest "
                    f"{digest}) than the run that planned the embedding ({job.weights_digest}); "
                    f"every worker must see the same weights files under {job.model.project_root}"
                )
            _WORKER_STREAM[key] = CropStream(
                build_extractor(backbone, job.layers),
                job.spec,
                {},
                job.settings,
                show_progress=False,
            )
        return _WORKER_STREAM[key]


_SEEN_RAW_DIRS: set[Path] = set()


def check_sees_raw_dir(job: ShardJob) -> None:
    """Raise, naming this host, unless this worker process sees the plan's raw_dir.

    Without this a worker missing the shared storage would fail every image of its shards.
    """
    raw_dir = Path(job.working_dir) / job.raw_dir
    if raw_dir in _SEEN_RAW_DIRS:
        return
    try:
        seen = raw_dir.is_dir() and next(os.scandir(raw_dir), None) is not None
    except OSError:
        seen = False
    if not seen:
        raise FileNotFoundError(
            errno.ENOENT,
            f"Dask worker on {socket.gethostname()} cannot see raw_dir {raw_dir} (absent, empty "
            "or unreadable): every worker must see the images at the same path (shared storage)",
        )
    _SEEN_RAW_DIRS.add(raw_dir)


def embed_and_write_shard(
    job: ShardJob, shard: ShardSpec, paths: Sequence[str], folder: str, fingerprint: str
) -> int:
    """One Dask task: decode, crop and embed one shard's images, write the shard; rows written."""
    check_sees_raw_dir(job)
    stream = worker_stream(job)
    planned = dict(zip(shard.image_ids, paths))
    opened = {i: Path(job.working_dir) / p for i, p in planned.items()}
    ((_, features, rejects),) = stream([shard], opened)
    # Rejects name the image as the plan does, whatever this worker's working directory.
    rejects = [Reject(r.image_id, planned[r.image_id], r.reason) for r in rejects]
    write_shard(Path(folder), shard, job.columns, fingerprint, features, rejects)
    return len(features)


def _the_job(job: ShardJob) -> ShardJob:
    return job


@dataclass(frozen=True)
class DaskShardWriter:
    """`EmbeddingPlan.write_in_place` on a Dask cluster: one task per shard, workers write them."""

    job: ShardJob
    paths: dict[str, str] = field(repr=False)
    fingerprints: dict[str, str] = field(repr=False)
    dask_params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, shards: Sequence[ShardSpec], folder: Path) -> Iterator[ShardSpec]:
        if not shards:
            return
        from distributed import as_completed

        run = uuid.uuid4().hex
        # Workers have their own working directory: they get the folder as an absolute path.
        target = str(Path(folder).resolve())
        with (
            dask_client("dask", self.dask_params) as client,
            tqdm(
                total=sum(len(s.image_ids) for s in shards),
                unit="img",
                desc="feature extraction (dask)",
                smoothing=0.1,
            ) as progress,
        ):
            # The job (settings, ~150 KiB of column names for VGG16) goes to the cluster once; a
            # task, not scattered data, so that the scheduler recomputes it if its worker dies.
            job = client.submit(_the_job, self.job, key=f"embed-job-{run}", pure=False)
            futures = {
                client.submit(
                    embed_and_write_shard,
                    job,
                    shard,
                    [self.paths[i] for i in shard.image_ids],
                    target,
                    self.fingerprints[shard.name],
                    key=f"embed-{shard.name}-{run}",
                    # An image the storage could not give fails its shard: tried again.
                    retries=SHARD_RETRIES,
                ): shard
                for shard in shards
            }
            for future in as_completed(futures):
                future.result()  # a task's error is raised here, with the worker's traceback
                shard = futures[future]
                progress.update(len(shard.image_ids))
                yield shard


@dataclass(frozen=True)
class ExtractionSettings:
    """How images become the embedding: `params:crops` and `params:feature_extraction`."""

    n_crops: int
    resize: int
    crop: int
    batch_size: int
    shard_size: int
    decode_workers: int
    fingerprint: str = "stat"
    decode_priority: str = "idle"

    @classmethod
    def from_params(cls, crops: int, feature_extraction: Mapping[str, Any]) -> ExtractionSettings:
        return cls(
            n_crops=crops,
            resize=feature_extraction["resize"],
            crop=feature_extraction["crop"],
            batch_size=feature_extraction["batch_size"],
            shard_size=feature_extraction["shard_size"],
            decode_workers=feature_extraction["decode_workers"],
            fingerprint=feature_extraction.get("fingerprint", "stat"),
            decode_priority=feature_extraction.get("decode_priority", "idle"),
        )

    def for_input_size(self, input_size: int | None, source_model: str) -> ExtractionSettings:
        """These settings with crops of the model's own input size (None: any size), the
        resize scaled alike (`crops.crop_geometry`)."""
        resize, crop = crop_geometry(input_size, self.resize, self.crop)
        if crop != self.crop:
            logger.info(
                "Source model %s takes %d-pixel inputs: crops of %d from a shorter side of %d "
                "(feature_extraction.resize and crop scaled alike)",
                source_model,
                crop,
                crop,
                resize,
            )
        return dataclasses.replace(self, resize=resize, crop=crop)

    def check(self) -> None:
        """Raise naming the parameter unless the settings can be used."""
        if self.n_crops not in CROP_COUNTS:
            raise ValueError(f"params:crops must be one of {CROP_COUNTS}, got {self.n_crops}")
        if self.crop > self.resize:
            raise ValueError(
                f"params:feature_extraction.crop ({self.crop}) is larger than the resized shorter "
                f"side feature_extraction.resize ({self.resize})"
            )
        if self.decode_priority not in DECODE_PRIORITIES:
            raise ValueError(
                f"params:feature_extraction.decode_priority must be one of {DECODE_PRIORITIES}, "
                f"got {self.decode_priority!r}"
            )
        if self.fingerprint not in FINGERPRINT_MODES:
            raise ValueError(
                f"params:feature_extraction.fingerprint must be one of {FINGERPRINT_MODES}, "
                f"got {self.fingerprint!r}"
            )


@dataclass(frozen=True)
class SourceModel:
    """The source model of an extraction: loaded here, and where Dask workers load it from."""

    name: str
    spec: dict[str, Any]
    backbone: keras.Model
    layers: tuple[str, ...]
    # Needed by executor dask only: workers load the model from its weights file.
    source: ModelSource | None = None


def plan_embedding(
    image_index: pd.DataFrame,
    raw_dir: Path,
    model: SourceModel,
    settings: ExtractionSettings,
    executor: str = "local",
    dask_params: Mapping[str, Any] | None = None,
) -> tuple[EmbeddingPlan, pd.DataFrame]:
    """The embedding's plan over every indexed image, and its feature manifest.

    Nothing is decoded here. With `executor="dask"` the plan's shards are computed and written by
    the workers of `dask_client(executor, dask_params)`, which load the model from `model.source`.
    """
    extractor = _checked_extractor(image_index, model, settings, executor, dask_params)
    manifest = feature_manifest(extractor, model.layers)
    paths = {
        image_id: raw_dir / path
        for image_id, path in zip(image_index["image_id"], image_index["path"])
    }
    logger.info(
        "Feature extraction: %d images, %d features (%s), %d crop(s) per image, executor %s",
        len(paths),
        len(manifest),
        ", ".join(model.layers),
        settings.n_crops,
        executor,
    )
    description = plan_description(model, settings, raw_dir)
    shards = plan_shards(list(paths), settings.shard_size)
    by_shard = shard_fingerprints(
        plan_fingerprint(description), shards, paths, settings.fingerprint
    )
    columns = tuple(manifest["feature"])
    write_in_place = None
    if executor == "dask":
        job = shard_job(model, settings, description["weights"], columns, raw_dir)
        write_in_place = DaskShardWriter(
            job, {i: str(p) for i, p in paths.items()}, by_shard, dict(dask_params or {})
        )
    plan = EmbeddingPlan(
        fingerprint=plan_fingerprint({"shards": by_shard}),
        columns=columns,
        shards=shards,
        compute=CropStream(
            extractor,
            model.spec,
            paths,
            settings,
        ),
        description=description,
        write_in_place=write_in_place,
        shard_fingerprints=by_shard,
    )
    return plan, manifest


def _checked_extractor(
    image_index: pd.DataFrame,
    model: SourceModel,
    settings: ExtractionSettings,
    executor: str,
    dask_params: Mapping[str, Any] | None,
) -> keras.Model:
    """The model's extractor, once the index, settings, executor and model fit together."""
    _check_image_index(image_index)
    check_executor(executor, dask_params)
    settings.check()
    if executor == "dask" and model.source is None:
        raise ValueError(
            "executor dask: the workers load the source model from its weights file, so the "
            "plan needs a model source (name, source_models, project_root)"
        )
    extractor = cached_extractor(model.backbone, model.layers)
    if extractor.inputs[0].shape[1] not in (None, settings.crop):
        raise ValueError(
            f"source model {model.name} has fc layers and takes "
            f"{extractor.inputs[0].shape[1]}-pixel crops, but crop is {settings.crop}"
        )
    return extractor


def plan_description(
    model: SourceModel, settings: ExtractionSettings, raw_dir: Path
) -> dict[str, Any]:
    """Everything besides the images that determines the embedding's values (plan.json shows it)."""
    return {
        "source_model": model.name,
        "spec": model.spec,
        "weights": weights_digest(model.backbone),
        "layers": list(model.layers),
        "crops": settings.n_crops,
        "resize": settings.resize,
        "crop": settings.crop,
        "batch_size": settings.batch_size,
        "raw_dir": str(raw_dir),
        "fingerprint": settings.fingerprint,
        "extraction_code_version": EXTRACTION_CODE_VERSION,
        "pillow": PIL.__version__,
    }


def shard_fingerprints(
    settings_fingerprint: str,
    shards: Sequence[ShardSpec],
    paths: Mapping[str, Path],
    mode: str,
) -> dict[str, str]:
    """Each shard's fingerprint: the settings' and, per image, its id, path and file identity."""
    return {
        shard.name: plan_fingerprint(
            {
                "settings": settings_fingerprint,
                "images": [
                    (i, str(paths[i]), file_identity(paths[i], mode)) for i in shard.image_ids
                ],
            }
        )
        for shard in shards
    }


def file_identity(path: Path, mode: str) -> tuple[Any, ...]:
    """(size, modification time in ns); with `mode` content (size, SHA-256 of the bytes) instead,
    so that a copied or touched file with the same bytes is the same image."""
    try:
        stat = path.stat()
        if mode != "content":
            return stat.st_size, stat.st_mtime_ns
        with path.open("rb") as file:
            return stat.st_size, hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise type(error)(
            error.errno,
            f"{path}: cannot read this file of the image_index ({error.strerror or error}); "
            "is raw_dir mounted, or did the images change since ingestion (rerun it)?",
        ) from error


def shard_job(
    model: SourceModel,
    settings: ExtractionSettings,
    digest: str,
    columns: tuple[str, ...],
    raw_dir: Path,
) -> ShardJob:
    """What every Dask task of the plan needs besides its shard."""
    return ShardJob(
        columns=columns,
        model=model.source,
        spec=dict(model.spec),
        layers=tuple(model.layers),
        weights_digest=digest,
        settings=settings,
        working_dir=str(Path.cwd().resolve()),
        raw_dir=str(raw_dir),
    )


def extraction_rejects_table(rejects: Sequence[Reject]) -> pd.DataFrame:
    """The `extraction_rejects` table (`path`, `reason`, `stage`) from the shards' rejects."""
    return pd.DataFrame(
        {
            "path": [r.path for r in rejects],
            "reason": [r.reason for r in rejects],
            "stage": "feature_extraction",
        },
        columns=["path", "reason", "stage"],
    )


def _check_image_index(image_index: pd.DataFrame) -> None:
    missing = {"image_id", "path"} - set(image_index.columns)
    if missing:
        raise ValueError(f"image_index lacks columns {sorted(missing)}")
    duplicated = image_index["image_id"][image_index["image_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"image_index repeats image ids, e.g. {duplicated.iloc[0]!r} ({len(duplicated)} repeats)"
        )
