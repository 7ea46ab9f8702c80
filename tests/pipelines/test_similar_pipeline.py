"""The similar pipeline through Kedro's runner: a tiny VGG-shaped network embeds a few images
(the feature_extraction pipeline), then query images are embedded the same way and matched."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset
from PIL import Image

from cnn_feature_behavior.extraction.embedding_columns import EmbeddingColumnsDataset
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.extraction.source_models.weight_files import write_legacy_h5
from cnn_feature_behavior.pipelines.feature_extraction import create_pipeline as extraction
from cnn_feature_behavior.pipelines.similar import create_pipeline as similar_pipeline

LAYERS = ["conv1_1", "conv3_3", "conv5_3", "fc6"]
EXTRACTION = {"resize": 36, "crop": 32, "batch_size": 8, "shard_size": 4, "decode_workers": 2}


class Kept(MemoryDataset):
    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Eight images of two classes (dark, bright) embedded by the feature_extraction pipeline."""
    root = tmp_path_factory.mktemp("similar")
    model = build_tiny_vgg(seed=5)
    weights = {layer.name: tuple(np.asarray(w) for w in layer.weights) for layer in model.layers}
    write_legacy_h5({name: w for name, w in weights.items() if w}, root / "tiny.h5")
    source_models = {
        "tiny": {
            "architecture": "vgg16",
            "preprocessing": "caffe",
            "layers": LAYERS,
            "weights": [{"source": "file", "path": str(root / "tiny.h5")}],
        }
    }
    raw = root / "raw"
    rng = np.random.default_rng(0)
    names, labels = [], []
    for k in range(8):
        label = k % 2
        (raw / f"c{label}").mkdir(parents=True, exist_ok=True)
        base = 40 if label == 0 else 200
        pixels = np.clip(base + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        name = f"c{label}/img{k}.png"
        Image.fromarray(pixels).save(raw / name)
        names.append(name)
        labels.append(label)
    index = pd.DataFrame(
        {
            "image_id": [n.removesuffix(".png") for n in names],
            "path": names,
            "label": labels,
            "class_name": [f"class{label}" for label in labels],
        }
    )
    common = {
        "image_index": MemoryDataset(index),
        "params:raw_dir": MemoryDataset(str(raw)),
        "params:source_models": MemoryDataset(source_models),
        "params:source_model": MemoryDataset("tiny"),
        "params:crops": MemoryDataset(1),
        "params:feature_extraction": MemoryDataset(EXTRACTION),
        "embedding": ShardedEmbeddingDataset(path=str(root / "embedding")),
        "embedding_shards": EmbeddingColumnsDataset(path=str(root / "embedding")),
        "feature_manifest": ParquetDataset(filepath=str(root / "manifest.parquet")),
    }
    SequentialRunner().run(
        extraction(),
        DataCatalog(
            {
                **common,
                "params:executor": MemoryDataset("local"),
                "params:dask": MemoryDataset({}),
                "extraction_rejects": MemoryDataset(),
            }
        ),
    )
    return {"root": root, "raw": raw, "common": common, "names": names}


def run_similar(study: dict, similar: dict, crops: int = 1) -> DataCatalog:
    catalog = DataCatalog(
        {
            **study["common"],
            "params:crops": MemoryDataset(crops),
            "params:similar": MemoryDataset(similar),
            "params:transfer.fne": MemoryDataset({"positive": 0.15, "negative": -0.25}),
            "params:dataset": MemoryDataset("tiny_set"),
            "params:source_model": MemoryDataset("tiny"),
            "similar_images": Kept(),
            "similar_rejects": Kept(),
            "similar_contact_sheet": Kept(),
        }
    )
    SequentialRunner().run(similar_pipeline(), catalog)
    return catalog


def test_a_dataset_image_finds_itself_first_and_its_class_next(study, tmp_path):
    queries = tmp_path / "queries"
    (queries / "sub").mkdir(parents=True)
    shutil.copy(study["raw"] / "c1/img3.png", queries / "sub" / "BRIGHT.PNG")
    shutil.copy(study["raw"] / "c0/img0.png", queries / "dark.png")
    (queries / "broken.jpg").write_bytes(b"not an image")
    (queries / "notes.txt").write_text("not an image either: not a query")
    catalog = run_similar(study, {"images": str(queries), "embedding": "full_network", "k": 3})

    table = catalog.load("similar_images")
    assert list(table.columns) == ["query", "rank", "image_id", "path", "class", "similarity"]
    assert table["query"].unique().tolist() == [
        str(queries / "dark.png"),
        str(queries / "sub" / "BRIGHT.PNG"),
    ]
    first = table[table["rank"] == 1].set_index("query")
    assert first.loc[str(queries / "dark.png"), "image_id"] == "c0/img0"
    assert first.loc[str(queries / "sub" / "BRIGHT.PNG"), "image_id"] == "c1/img3"
    assert np.allclose(first["similarity"], 1.0, atol=1e-5)
    assert (table.groupby("query")["class"].first().tolist()) == ["class0", "class1"]
    assert all(Path(p).is_file() for p in table["path"])  # openable from here
    rejects = catalog.load("similar_rejects")
    assert rejects["path"].tolist() == [str(queries / "broken.jpg")]
    assert rejects["reason"].iloc[0].startswith("cannot decode")
    figure = catalog.load("similar_contact_sheet")
    assert len(figure.axes) == 2 * (1 + 3)


def test_the_fne_and_a_layer_rank_by_their_own_cosines(study):
    query = study["raw"] / "c0/img2.png"
    for embedding in ("fne", "layer:conv3_3"):
        catalog = run_similar(study, {"images": str(query), "embedding": embedding, "k": 8})
        table = catalog.load("similar_images")
        assert table["image_id"].iloc[0] == "c0/img2", embedding
        assert table["similarity"].is_monotonic_decreasing


def test_query_images_must_be_embedded_as_the_study_was(study):
    query = study["raw"] / "c0/img2.png"
    with pytest.raises(Exception, match="crops: the embedding has 1, this run 10"):
        run_similar(study, {"images": str(query)}, crops=10)


def test_bad_parameters_are_named(study, tmp_path):
    with pytest.raises(Exception, match="similar.images is not set"):
        run_similar(study, {"images": None})
    with pytest.raises(Exception, match="neither an image file nor a folder"):
        run_similar(study, {"images": str(tmp_path / "absent")})
    with pytest.raises(Exception, match="similar.embedding is 'layer:conv9_9'.*layer:conv1_1"):
        run_similar(study, {"images": str(study["raw"]), "embedding": "layer:conv9_9"})
