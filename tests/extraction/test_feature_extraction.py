"""Feature extraction: the multi-output model, crop averaging, the Kedro pipeline, kill-and-resume."""

from __future__ import annotations

import logging
import os
import runpy
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset
from PIL import Image

from cnn_feature_behavior.extraction.crops import crops_of, load_rgb, resize_shorter_side
from cnn_feature_behavior.extraction.embedding_columns import EmbeddingColumnsDataset
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg, keras_layer_name
from cnn_feature_behavior.extraction.source_models.weight_files import write_legacy_h5
from cnn_feature_behavior.extraction.stream import (
    CropStream,
    ExtractionSettings,
    SourceModel,
    build_extractor,
    feature_manifest,
    plan_embedding,
    plan_shards,
    prefetched,
)
from cnn_feature_behavior.pipelines.feature_extraction import create_pipeline

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
TINY_LAYERS = ["conv1_1", "conv2_2", "conv3_3", "conv4_1", "conv5_3", "fc6", "fc7"]
SPEC = {"architecture": "vgg16", "preprocessing": "caffe", "layers": TINY_LAYERS, "weights": []}
DASK = {"scheduler_address": None, "n_workers": 2, "threads_per_worker": 1}


def _caffe(crop_uint8: np.ndarray) -> np.ndarray:
    return crop_uint8[..., ::-1].astype(np.float64) - CAFFE_MEAN_BGR


def _random_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k, (height, width) in enumerate(sizes):
        name = f"img{k:03d}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            folder / name
        )
        names.append(name)
    return names


def test_extractor_outputs_are_spatial_means_and_fc_as_is():
    backbone = build_tiny_vgg(seed=3)
    extractor = build_extractor(backbone, TINY_LAYERS)
    inputs = np.random.default_rng(0).uniform(-120, 120, (3, 32, 32, 3)).astype(np.float32)
    outputs = extractor.predict_on_batch(inputs)
    for layer, got in zip(TINY_LAYERS, outputs, strict=True):
        tap = keras.Model(backbone.inputs, backbone.get_layer(keras_layer_name(layer)).output)
        raw = np.asarray(tap.predict_on_batch(inputs), dtype=np.float64)
        expected = raw.mean(axis=(1, 2)) if raw.ndim == 4 else raw
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert len(extractor.outputs) == len(TINY_LAYERS)


def test_manifest_lists_every_column_in_layer_order():
    extractor = build_extractor(build_tiny_vgg(seed=0), TINY_LAYERS)
    manifest = feature_manifest(extractor, TINY_LAYERS)
    widths = {
        "conv1_1": 2,
        "conv2_2": 4,
        "conv3_3": 8,
        "conv4_1": 16,
        "conv5_3": 16,
        "fc6": 8,
        "fc7": 8,
    }
    expected = [(f"{layer}/n{i}", layer, i) for layer in TINY_LAYERS for i in range(widths[layer])]
    assert list(zip(manifest["feature"], manifest["layer"], manifest["filter"])) == expected
    assert list(manifest.columns) == ["feature", "layer", "filter", "layer_kind"]
    assert manifest["filter"].dtype == np.int64
    assert set(manifest.loc[manifest["layer"].str.startswith("fc"), "layer_kind"]) == {"head"}
    assert set(manifest.loc[manifest["layer"].str.startswith("conv"), "layer_kind"]) == {"spatial"}


def _pixel_probe() -> keras.Model:
    """A 'VGG' whose block1_conv1 gives each pixel's blue value and its rightward blue gradient.

    Averaged over space this is a crop's mean blue and mean gradient: the second is not the same
    for a crop and its mirror, so the test sees which crops were cut and whether they were mirrored.
    """
    inputs = keras.Input((None, None, 3))
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    kernel[1, 1, 0, 0] = 1.0  # the pixel's blue (channel 0 after the BGR swap)
    kernel[1, 2, 0, 1], kernel[1, 1, 0, 1] = 1.0, -1.0  # right neighbour minus pixel
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="block1_conv1")
    outputs = conv(inputs)
    conv.set_weights(
        [kernel, np.full(2, 400.0, np.float32)]
    )  # keeps every value above the ReLU's 0
    return keras.Model(inputs, outputs)


def _probe_reference(crop_uint8: np.ndarray) -> np.ndarray:
    blue = _caffe(crop_uint8)[..., 0]
    right = np.zeros_like(blue)
    right[:, :-1] = blue[:, 1:]  # zero padding beyond the right edge, as in the conv
    return np.array([(blue + 400).mean(), (right - blue + 400).mean()])


@pytest.mark.parametrize("n_crops", [10, 1])
def test_crop_geometry_and_crop_mean_through_the_model(tmp_path, n_crops):
    names = _random_images(tmp_path, [(20, 30), (33, 20)])
    stream = CropStream(
        build_extractor(_pixel_probe(), ["conv1_1"]),
        SPEC,
        {n: tmp_path / n for n in names},
        ExtractionSettings(
            n_crops=n_crops, resize=20, crop=16, batch_size=7, shard_size=10, decode_workers=2
        ),
    )
    ((_, got, rejects),) = list(stream([plan_shards(names, 10)[0]]))
    assert rejects == []
    # 20x30 stays as it is; 33x20 is already 20 on its shorter side.
    origins = {
        names[0]: [(0, 0), (0, 14), (4, 0), (4, 14), (2, 7)],
        names[1]: [(0, 0), (0, 4), (17, 0), (17, 4), (8, 2)],
    }
    for row, name in zip(got, names, strict=True):
        pixels = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        crops = [pixels[top : top + 16, left : left + 16] for top, left in origins[name]]
        crops = crops[4:] if n_crops == 1 else crops + [c[:, ::-1] for c in crops]
        expected = np.mean([_probe_reference(c) for c in crops], axis=0)
        np.testing.assert_allclose(row, expected, rtol=1e-5)  # float32 sums inside the model
    assert got.dtype == np.float32


def test_image_vector_is_the_mean_of_its_crop_vectors(tmp_path):
    names = _random_images(tmp_path, [(40, 50), (36, 36), (60, 37)], seed=1)
    backbone = build_tiny_vgg(seed=2)
    extractor = build_extractor(backbone, TINY_LAYERS)
    stream = CropStream(
        extractor,
        SPEC,
        {n: tmp_path / n for n in names},
        ExtractionSettings(
            n_crops=10, resize=36, crop=32, batch_size=20, shard_size=5, decode_workers=2
        ),
    )
    ((_, got, _),) = list(stream(plan_shards(names, 5)))
    for row, name in zip(got, names, strict=True):
        crops = crops_of(resize_shorter_side(load_rgb(tmp_path / name), 36), 32, 10)
        per_crop = np.concatenate(
            [
                np.asarray(o, np.float64)
                for o in extractor.predict_on_batch(_caffe(crops).astype(np.float32))
            ],
            axis=1,
        )
        np.testing.assert_allclose(row, per_crop.mean(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread policy: Linux")
def test_decoding_threads_yield_the_cpu_to_the_model(tmp_path, monkeypatch):
    import threading

    import cnn_feature_behavior.extraction.stream as stream_module

    names = _random_images(tmp_path, [(40, 50), (36, 80), (50, 40)], seed=3)
    policies_seen: list[int] = []
    real_decode_rgb = stream_module.decode_rgb

    def recording_decode_rgb(path):
        policies_seen.append(os.sched_getscheduler(threading.get_native_id()))
        return real_decode_rgb(path)

    monkeypatch.setattr(stream_module, "decode_rgb", recording_decode_rgb)
    model_policy = os.sched_getscheduler(threading.get_native_id())
    for priority, expected in (("idle", os.SCHED_IDLE), ("normal", model_policy)):
        policies_seen.clear()
        stream = CropStream(
            build_extractor(build_tiny_vgg(), TINY_LAYERS),
            SPEC,
            {n: tmp_path / n for n in names},
            ExtractionSettings(
                n_crops=1, resize=36, crop=32, batch_size=2, shard_size=2, decode_workers=2,
                decode_priority=priority,
            ),
        )  # fmt: skip
        assert sum(len(f) for _, f, _ in stream(plan_shards(names, 2))) == 3
        assert policies_seen == [expected] * 3, priority
    assert os.sched_getscheduler(threading.get_native_id()) == model_policy


def test_an_unknown_decode_priority_is_named():
    settings = ExtractionSettings.from_params(
        1,
        {"resize": 256, "crop": 224, "batch_size": 10, "shard_size": 8, "decode_workers": 2,
         "decode_priority": "low"},
    )  # fmt: skip
    with pytest.raises(ValueError, match="feature_extraction.decode_priority must be one of"):
        settings.check()


def test_crops_are_preprocessed_in_the_decoding_threads(tmp_path, monkeypatch):
    import threading

    import cnn_feature_behavior.extraction.stream as stream_module

    names = _random_images(tmp_path, [(40, 50), (36, 80), (50, 40)], seed=4)
    preprocessed_in: list[int] = []
    real_preprocess = stream_module.preprocess

    def recording_preprocess(crops, spec):
        preprocessed_in.append(threading.get_ident())
        return real_preprocess(crops, spec)

    monkeypatch.setattr(stream_module, "preprocess", recording_preprocess)
    stream = CropStream(
        build_extractor(build_tiny_vgg(), TINY_LAYERS),
        SPEC,
        {n: tmp_path / n for n in names},
        ExtractionSettings(
            n_crops=10, resize=36, crop=32, batch_size=20, shard_size=3, decode_workers=2
        ),
    )
    ((_, features, _),) = stream(plan_shards(names, 3))
    # One call per image, none in the model's thread (values: the crop-mean tests above).
    assert len(features) == 3 and len(preprocessed_in) == 3
    assert threading.get_ident() not in preprocessed_in


def test_prefetch_keeps_order_and_bounds_work_in_flight():
    from concurrent.futures import ThreadPoolExecutor

    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        return x * x

    with ThreadPoolExecutor(2) as pool:
        results = prefetched(pool, work, range(100), depth=3)
        assert next(results) == 0
        assert len(started) <= 3
        assert list(results) == [x * x for x in range(1, 100)]


def _tiny_weights(path: Path, seed: int = 0) -> None:
    model = build_tiny_vgg(seed=seed)
    write_legacy_h5(
        {
            layer.name: tuple(np.asarray(w) for w in layer.weights)
            for layer in model.layers
            if layer.weights
        },
        path,
    )


def _index(raw: Path, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [n.split(".")[0] for n in names],
            "path": names,
            "label": np.arange(len(names)) % 2,
            "class_name": ["a", "b"] * (len(names) // 2) + ["a"] * (len(names) % 2),
        }
    )


def _run_pipeline(
    tmp_path: Path,
    index: pd.DataFrame,
    raw: Path,
    crops: int = 10,
    crop: int = 32,
    executor: str = "local",
    resize: int = 36,
) -> DataCatalog:
    _tiny_weights(tmp_path / "tiny.h5")
    source_models = {
        "tiny": {**SPEC, "weights": [{"source": "file", "path": str(tmp_path / "tiny.h5")}]}
    }
    catalog = DataCatalog(
        {
            "image_index": MemoryDataset(index),
            "params:raw_dir": MemoryDataset(str(raw)),
            "params:source_models": MemoryDataset(source_models),
            "params:source_model": MemoryDataset("tiny"),
            "params:crops": MemoryDataset(crops),
            "params:feature_extraction": MemoryDataset(
                {
                    "resize": resize,
                    "crop": crop,
                    "batch_size": 10,
                    "shard_size": 2,
                    "decode_workers": 2,
                }
            ),
            "params:executor": MemoryDataset(executor),
            "params:dask": MemoryDataset(DASK),
            "embedding": ShardedEmbeddingDataset(path=str(tmp_path / "embedding")),
            "embedding_columns": EmbeddingColumnsDataset(path=str(tmp_path / "embedding")),
            # A file: a MemoryDataset would be released once collect_extraction_rejects read it.
            "feature_manifest": ParquetDataset(filepath=str(tmp_path / "feature_manifest.parquet")),
            "extraction_rejects": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_pipeline_writes_embedding_manifest_and_rejects(tmp_path):
    raw = tmp_path / "raw"
    names = _random_images(raw, [(40, 50), (36, 80), (20, 20), (50, 40), (45, 45)], seed=4)
    Image.fromarray(np.full((30, 30), 90, np.uint8), mode="L").save(raw / "grey.jpg")
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    names = names[:2] + ["broken.jpg", "grey.jpg"] + names[2:]
    catalog = _run_pipeline(tmp_path, _index(raw, names), raw)

    manifest = catalog.load("feature_manifest")
    rejects = catalog.load("extraction_rejects")
    embedding = catalog.load("embedding")
    assert list(rejects.columns) == ["path", "reason", "stage"]
    assert rejects["path"].tolist() == [str(raw / "broken.jpg")]
    assert rejects["reason"].iloc[0].startswith("cannot decode")
    assert set(rejects["stage"]) == {"feature_extraction"}
    kept = [n.split(".")[0] for n in names if n != "broken.jpg"]
    assert embedding.index.tolist() == kept
    assert embedding.index.name == "image_id"
    assert list(embedding.columns) == manifest["feature"].tolist()
    assert set(embedding.dtypes) == {np.dtype(np.float32)}
    assert manifest["layer"].unique().tolist() == TINY_LAYERS

    extractor = build_extractor(build_tiny_vgg(seed=0), TINY_LAYERS)
    crops = crops_of(resize_shorter_side(load_rgb(raw / "grey.jpg"), 36), 32, 10)
    per_crop = np.concatenate(
        [
            np.asarray(o, np.float64)
            for o in extractor.predict_on_batch(_caffe(crops).astype(np.float32))
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        embedding.loc["grey"].to_numpy(), per_crop.mean(axis=0), rtol=1e-4, atol=1e-5
    )


def test_a_fixed_input_size_gets_crops_of_its_size_with_the_resize_scaled_alike(tmp_path):
    raw = tmp_path / "raw"
    names = _random_images(raw, [(40, 60), (70, 50)])
    index = _index(raw, names)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # The tiny VGG with fc layers takes 32 pixels: crop 24 from 36 becomes crop 32 from 48.
    configured = _run_pipeline(tmp_path / "a", index, raw, crops=1, crop=24, resize=36)
    scaled = _run_pipeline(tmp_path / "b", index, raw, crops=1, crop=32, resize=48)
    pd.testing.assert_frame_equal(configured.load("embedding"), scaled.load("embedding"))


def test_repeated_image_ids_are_refused(tmp_path):
    index = pd.DataFrame({"image_id": ["a", "a"], "path": ["x.png", "y.png"]})
    with pytest.raises(ValueError, match="repeats image ids"):
        plan_embedding(
            index,
            tmp_path,
            SourceModel("tiny", SPEC, build_tiny_vgg(), tuple(TINY_LAYERS)),
            ExtractionSettings(
                n_crops=1, resize=36, crop=32, batch_size=4, shard_size=2, decode_workers=1
            ),
        )


_EXTRACT_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path
    import pandas as pd
    from cnn_feature_behavior.extraction.embedding_store import EmbeddingPlan, ShardedEmbeddingDataset
    from cnn_feature_behavior.extraction.stream import ExtractionSettings, SourceModel, plan_embedding
    from cnn_feature_behavior.extraction.source_models import build_tiny_vgg

    logging.basicConfig(level=logging.INFO)
    raw, out, pause = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    names = sorted(p.name for p in raw.iterdir())
    index = pd.DataFrame({"image_id": names, "path": names})
    spec = {"architecture": "vgg16", "preprocessing": "caffe", "layers": ["conv1_1", "conv5_3", "fc7"], "weights": []}
    model = SourceModel("tiny", spec, build_tiny_vgg(seed=11), tuple(spec["layers"]))
    settings = ExtractionSettings(n_crops=10, resize=36, crop=32, batch_size=20, shard_size=3, decode_workers=2)
    plan, _ = plan_embedding(index, raw, model, settings)

    def slowly(shards):
        for item in plan.compute(shards):
            time.sleep(pause)  # room for the test to kill this process between and during shard writes
            yield item

    slow_plan = EmbeddingPlan(plan.fingerprint, plan.columns, plan.shards, slowly, plan.description)
    ShardedEmbeddingDataset(path=out).save(slow_plan)
    """
)


@pytest.mark.slow
def test_kill_minus_nine_then_rerun_gives_the_uninterrupted_embedding(
    tmp_path, monkeypatch, caplog
):
    raw = tmp_path / "raw"
    _random_images(raw, [(36 + k % 5, 40 + 3 * k) for k in range(30)], seed=9)
    script = tmp_path / "extract.py"
    script.write_text(_EXTRACT_SCRIPT)
    resumed, reference = tmp_path / "resumed", tmp_path / "reference"
    n_shards = 10

    process = subprocess.Popen([sys.executable, str(script), str(raw), str(resumed), "0.4"])
    deadline = time.monotonic() + 120
    while len(list(resumed.glob("shard-*.parquet"))) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, "the extraction finished or died before it could be killed"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(list(resumed.glob("shard-*.parquet")))
    assert 3 <= done_at_kill < n_shards, done_at_kill

    def run_in_process(out: Path) -> None:
        monkeypatch.setattr(sys, "argv", ["extract.py", str(raw), str(out), "0"])
        runpy.run_path(str(script), run_name="__main__")

    with caplog.at_level(logging.INFO, logger="cnn_feature_behavior.extraction.embedding_store"):
        run_in_process(resumed)
    assert f"{done_at_kill} of {n_shards} shards already complete" in caplog.text
    run_in_process(reference)

    got = ShardedEmbeddingDataset(path=str(resumed)).load()
    expected = ShardedEmbeddingDataset(path=str(reference)).load()
    assert len(got) == 30
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert not list(resumed.glob(".*partial"))


def test_each_image_is_decoded_once_and_rejects_come_from_the_shards(tmp_path, monkeypatch):
    import cnn_feature_behavior.extraction.stream as stream_module

    raw = tmp_path / "raw"
    names = _random_images(raw, [(40, 50), (36, 80), (50, 40)], seed=5)
    (raw / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    names = names[:1] + ["broken.png"] + names[1:]
    decoded: list[Path] = []
    real_decode_rgb = stream_module.decode_rgb

    def counting_decode_rgb(path):
        decoded.append(Path(path))
        return real_decode_rgb(path)

    monkeypatch.setattr(stream_module, "decode_rgb", counting_decode_rgb)
    catalog = _run_pipeline(tmp_path, _index(raw, names), raw, crops=1)

    assert sorted(decoded) == sorted(raw / n for n in names)  # every image once, no second pass
    rejects = catalog.load("extraction_rejects")
    assert rejects["path"].tolist() == [str(raw / "broken.png")]
    assert rejects["reason"].iloc[0].startswith("cannot decode: OSError")
    embedding = catalog.load("embedding")
    assert embedding.index.tolist() == [n.split(".")[0] for n in names if n != "broken.png"]
    store = ShardedEmbeddingDataset(path=str(tmp_path / "embedding"))
    assert [r.image_id for r in store.rejects()] == ["broken"]
