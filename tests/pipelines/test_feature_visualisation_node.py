"""The top-features node end to end through Kedro's runner, on a tiny VGG and synthetic images."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.matplotlib import MatplotlibDataset
from PIL import Image

import cnn_feature_behavior.extraction.source_models as source_models_api
from cnn_feature_behavior.extraction import top_patches
from cnn_feature_behavior.pipelines.reporting.nodes import plot_top_feature_patches

CLASSES = ["red thing", "green/thing", "blue"]
SOURCE_MODELS = {
    "tiny": {
        "architecture": "vgg16",
        "preprocessing": "caffe",
        "layers": ["conv1_1"],
        "weights": [],
    }
}
EXTRACTION = {"resize": 256, "crop": 224, "batch_size": 32}
PARAMS = {
    "classes": None,
    "max_classes": 2,
    "features_per_side": 3,
    "layers": None,
    "pool_dir": None,
    "max_pool_images": 10,
    "sample_images": 2,
    "batch_size": 4,
}


@pytest.fixture(scope="module")
def tiny_vgg():
    return source_models_api.build_tiny_vgg(input_size=224, include_fc=True, seed=3)


@pytest.fixture
def tiny_backbone(monkeypatch, tiny_vgg):
    """`load_backbone` replaced by a seeded tiny VGG16 with 224 inputs and fc layers: no weights
    file, no network. Returns the names it was called with."""
    calls = []

    def load_backbone(name, source_models, project_root=None):
        calls.append(name)
        assert name in source_models
        return tiny_vgg

    monkeypatch.setattr(source_models_api, "load_backbone", load_backbone)
    return calls


@pytest.fixture
def dataset(tmp_path):
    """Three classes of four images each, in sizes other than 224, with coloured blobs."""
    rng = np.random.default_rng(0)
    raw_dir = tmp_path / "raw"
    rows = []
    for label, name in enumerate(CLASSES):
        for i in range(4):
            size = (300 + 20 * i, 240 + 10 * label)
            pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
            top, left = rng.integers(0, 150, size=2)
            pixels[top : top + 60, left : left + 60, label] = 255
            path = f"c{label}/img_{i}.jpg"
            (raw_dir / f"c{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(raw_dir / path)
            rows.append({"image_id": path[:-4], "path": path, "label": label, "class_name": name})
    image_index = pd.DataFrame(rows)
    features = (
        [f"conv1_1/n{f}" for f in range(2)]
        + [f"conv4_3/n{f}" for f in range(16)]
        + [f"fc7/n{f}" for f in range(8)]
    )
    dks = pd.DataFrame(
        {"layer": [f.split("/")[0] for f in features]}
        | {name: rng.uniform(-1, 1, len(features)).astype(np.float32) for name in CLASSES},
        index=pd.Index(features, name="feature"),
    )
    return raw_dir, image_index, dks


def _run(raw_dir, image_index, dks, params, output_dir):
    pipeline = Pipeline(
        [
            node(
                plot_top_feature_patches,
                inputs=[
                    "dks",
                    "image_index",
                    "params:raw_dir",
                    "params:source_model",
                    "params:source_models",
                    "params:feature_visualisation",
                    "params:feature_extraction",
                ],
                outputs="top_feature_figures",
                name="plot_top_feature_patches",
            )
        ]
    )
    catalog = DataCatalog(
        {
            "dks": MemoryDataset(dks),
            "image_index": MemoryDataset(image_index),
            "params:raw_dir": MemoryDataset(str(raw_dir)),
            "params:source_model": MemoryDataset("tiny"),
            "params:source_models": MemoryDataset(SOURCE_MODELS),
            "params:feature_visualisation": MemoryDataset(params),
            "params:feature_extraction": MemoryDataset(EXTRACTION),
            "top_feature_figures": MatplotlibDataset(filepath=str(output_dir)),
        }
    )
    SequentialRunner().run(pipeline, catalog)
    return sorted(output_dir.iterdir())


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=float)


def test_one_figure_per_chosen_class_written_through_the_catalog(tmp_path, dataset, tiny_backbone):
    raw_dir, image_index, dks = dataset
    written = _run(raw_dir, image_index, dks, PARAMS, tmp_path / "figures")
    assert [p.name for p in written] == [
        "top_features_green_thing.png",
        "top_features_red_thing.png",
    ]
    for path in written:
        assert _pixels(path).std() > 20, path
    assert tiny_backbone == ["tiny"]  # one backbone for every class and feature


def test_folder_pool_logs_and_leaves_out_unreadable_files(tmp_path, dataset, tiny_backbone, caplog):
    raw_dir, image_index, dks = dataset
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(5):
        Image.fromarray(np.full((230, 250, 3), 40 * i, np.uint8)).save(pool / f"ref_{i}.png")
    (pool / "broken.jpg").write_bytes(b"not a jpeg")
    (pool / "notes.txt").write_text("not an image")
    params = PARAMS | {"classes": ["blue"], "pool_dir": str(pool), "layers": ["conv4_3", "fc7"]}
    with caplog.at_level(logging.WARNING):
        written = _run(raw_dir, image_index, dks, params, tmp_path / "figures")
    assert [p.name for p in written] == ["top_features_blue.png"]
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "broken.jpg" in messages and "1 of 6 images unreadable" in messages
    assert "fewer than 9 patches" in messages


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classes": ["cat"]}, r"\['cat'\] are not classes"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"colour": "red"}, r"unknown \['colour'\]"),
        ({"pool_dir": "/nonexistent/pool"}, "/nonexistent/pool is not a folder"),
    ],
)
def test_bad_parameters_are_refused_clearly(tmp_path, dataset, tiny_backbone, change, message):
    raw_dir, image_index, dks = dataset
    with pytest.raises(Exception, match=message):
        plot_top_feature_patches(
            dks, image_index, str(raw_dir), "tiny", SOURCE_MODELS, PARAMS | change, EXTRACTION
        )


def test_classes_whose_file_names_clash_are_refused_before_any_work(
    tmp_path, dataset, tiny_backbone
):
    raw_dir, image_index, dks = dataset
    dks = dks.rename(columns={"blue": "red/thing"})
    with pytest.raises(ValueError, match="top_features_red_thing.png"):
        plot_top_feature_patches(
            dks,
            image_index,
            str(raw_dir),
            "tiny",
            SOURCE_MODELS,
            PARAMS | {"classes": ["red thing", "red/thing"]},
            EXTRACTION,
        )
    assert tiny_backbone == []


def test_project_parameters_are_valid_settings(project_root):
    from kedro.config import OmegaConfigLoader

    from cnn_feature_behavior.extraction.top_patches import VisualisationSettings

    params = OmegaConfigLoader(
        str(project_root / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    settings = VisualisationSettings.from_params(params["reporting"]["feature_visualisation"])
    assert settings.pool_dir is None  # by default the dataset is its own reference pool
    assert {"resize", "crop"} <= set(params["feature_extraction"])


def test_a_network_without_derived_receptive_fields_shows_whole_images(
    tmp_path, dataset, tiny_backbone, monkeypatch, caplog
):
    """A graph network (depthwise convolutions, residual additions) still gets its figures."""

    def not_a_plain_stack(model, input_size):
        raise ValueError("layer 'block1a_dwconv' (DepthwiseConv2D): unknown effect")

    monkeypatch.setattr(top_patches, "fields_by_layer", not_a_plain_stack)
    raw_dir, image_index, dks = dataset
    with caplog.at_level(logging.WARNING):
        written = _run(raw_dir, image_index, dks, PARAMS, tmp_path / "figures")
    assert len(written) == 2 and all(_pixels(path).std() > 20 for path in written)
    assert "no receptive fields (layer 'block1a_dwconv'" in caplog.text
