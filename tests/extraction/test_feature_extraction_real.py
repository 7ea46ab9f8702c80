"""End to end on real images with the real default weights: the embedding separates classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from cnn_feature_behavior.extraction.embedding_columns import EmbeddingColumnsDataset
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import build_vgg, source_model_spec
from cnn_feature_behavior.extraction.stream import (
    ExtractionSettings,
    SourceModel,
    plan_embedding,
)
from cnn_feature_behavior.pipelines.feature_extraction import create_pipeline

pytestmark = pytest.mark.slow

SETTINGS = {"resize": 256, "crop": 224, "batch_size": 16, "shard_size": 64, "decode_workers": 2}


@pytest.fixture(scope="module")
def caltech_index(shared_datasets: Path) -> tuple[Path, pd.DataFrame]:
    """caltech101-mini's 8 object classes (the clutter class left out), 20 images each."""
    raw = shared_datasets / "caltech101-mini"
    rows = []
    classes = sorted(
        p.name for p in (raw / "101_ObjectCategories").iterdir() if p.name != "BACKGROUND_Google"
    )
    for label, name in enumerate(classes):
        for path in sorted((raw / "101_ObjectCategories" / name).glob("*.jpg")):
            relative = path.relative_to(raw).as_posix()
            rows.append((relative.removesuffix(".jpg"), relative, label, name))
    return raw, pd.DataFrame(rows, columns=["image_id", "path", "label", "class_name"])


def _source_models(project_root: Path) -> dict:
    loader = OmegaConfigLoader(str(project_root / "conf"), base_env="base", default_run_env="local")
    return loader["parameters"]["source_models"]


def leave_one_out_1nn_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Each image labelled as its nearest other image (Euclidean), on standardised features."""
    std = features.std(axis=0)
    z = (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)
    squared = (z**2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * z @ z.T
    np.fill_diagonal(distances, np.inf)
    return float((labels[distances.argmin(axis=1)] == labels).mean())


def test_knn_reference_matches_a_brute_force_loop():
    rng = np.random.default_rng(0)
    features, labels = rng.standard_normal((25, 4)), rng.integers(0, 3, 25)
    z = (features - features.mean(axis=0)) / features.std(axis=0)
    hits = 0
    for i in range(25):
        others = [j for j in range(25) if j != i]
        nearest = min(others, key=lambda j: np.sum((z[i] - z[j]) ** 2))
        hits += labels[nearest] == labels[i]
    assert leave_one_out_1nn_accuracy(features, labels) == pytest.approx(hits / 25)


def test_default_weights_separate_caltech_classes_and_random_weights_do_not(
    caltech_index, project_root, tmp_path, monkeypatch
):
    if not (project_root / "data/06_models/vgg16_imagenet_conv.h5").is_file():
        pytest.skip(
            "default weights not fetched: run `make setup` (data/06_models/vgg16_imagenet_conv.h5 absent)"
        )
    raw, index = caltech_index
    assert len(index) == 160
    source_models = _source_models(project_root)
    monkeypatch.chdir(
        project_root
    )  # weights paths in conf are relative to the project, as in `kedro run`
    catalog = DataCatalog(
        {
            "image_index": MemoryDataset(index),
            "params:raw_dir": MemoryDataset(str(raw)),
            "params:source_models": MemoryDataset(source_models),
            "params:source_model": MemoryDataset("vgg16_imagenet"),
            "params:crops": MemoryDataset(1),
            "params:feature_extraction": MemoryDataset(SETTINGS),
            "params:executor": MemoryDataset("local"),
            "params:dask": MemoryDataset({}),
            "embedding": ShardedEmbeddingDataset(path=str(tmp_path / "embedding")),
            "embedding_columns": EmbeddingColumnsDataset(path=str(tmp_path / "embedding")),
            # A file: a MemoryDataset would be released once collect_extraction_rejects read it.
            "feature_manifest": ParquetDataset(filepath=str(tmp_path / "feature_manifest.parquet")),
            "extraction_rejects": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    manifest = catalog.load("feature_manifest")
    assert catalog.load("extraction_rejects").empty
    conv5_3 = manifest.loc[manifest["layer"] == "conv5_3", "feature"].tolist()
    assert len(conv5_3) == 512
    assert manifest["layer_kind"].eq("spatial").sum() == 4224
    embedding = ShardedEmbeddingDataset(path=str(tmp_path / "embedding")).load_columns(conv5_3)
    assert embedding.index.tolist() == index["image_id"].tolist()
    labels = index["label"].to_numpy()
    pretrained = leave_one_out_1nn_accuracy(embedding.to_numpy(np.float64), labels)

    spec = source_model_spec("vgg16_imagenet", source_models)
    random_backbone = build_vgg("vgg16", include_fc=False, input_size=None, seed=0)
    plan, _ = plan_embedding(
        index,
        raw,
        SourceModel("vgg16_random", spec, random_backbone, ("conv5_3",)),
        ExtractionSettings(
            n_crops=1, resize=256, crop=224, batch_size=16, shard_size=64, decode_workers=2
        ),
    )
    random_features = np.concatenate([features for _, features, _ in plan.compute(plan.shards)])
    random = leave_one_out_1nn_accuracy(random_features.astype(np.float64), labels)

    print(
        f"leave-one-out 1-NN on conv5_3: pretrained {pretrained:.3f}, random weights {random:.3f}"
    )
    assert pretrained >= 0.8
    assert random <= pretrained - 0.2  # random conv features still see colour and texture
