"""Any keras.applications network or a user's .keras model as a source model.

The families are built with random weights (`weights=None`, nothing downloaded) at their own input
size and run through the extraction on real images: default layer names, count and widths as
docs/source_models.md lists them. One family and a user's .keras model go through the Kedro
feature_extraction pipeline.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from cnn_feature_behavior.extraction.crops import crop_geometry, image_crops
from cnn_feature_behavior.extraction.embedding_columns import EmbeddingColumnsDataset
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import (
    available_layers,
    load_backbone,
    preprocess,
    source_model_spec,
)
from cnn_feature_behavior.extraction.source_models.applications import (
    FAMILIES,
    build_application,
)
from cnn_feature_behavior.extraction.stream import ExtractionSettings, SourceModel, plan_embedding
from cnn_feature_behavior.pipelines.feature_extraction import create_pipeline


def _resnet50() -> list[tuple[str, int]]:
    stages = {2: (3, 256), 3: (4, 512), 4: (6, 1024), 5: (3, 2048)}
    return [
        (f"conv{s}_block{b}_out", width)
        for s, (blocks, width) in stages.items()
        for b in range(1, blocks + 1)
    ]


def _mobilenet_v2() -> list[tuple[str, int]]:
    # Inverted residual blocks 1..16 by stage (first block, last block, width); a stage's first
    # block has no residual sum: its output is its projection's batch norm.
    layers = [("expanded_conv_project_BN", 16)]
    for first, last, width in [(1, 2, 24), (3, 5, 32), (6, 9, 64), (10, 12, 96), (13, 15, 160)]:
        layers.append((f"block_{first}_project_BN", width))
        layers += [(f"block_{b}_add", width) for b in range(first + 1, last + 1)]
    return layers + [("block_16_project_BN", 320), ("out_relu", 1280)]


def _efficientnet_b0() -> list[tuple[str, int]]:
    layers = []
    stages = [(1, 16), (2, 24), (2, 40), (3, 80), (3, 112), (4, 192), (1, 320)]
    for stage, (repeats, width) in enumerate(stages, start=1):
        letters = "abcd"[:repeats]
        layers.append((f"block{stage}a_project_bn", width))
        layers += [(f"block{stage}{letter}_add", width) for letter in letters[1:]]
    return layers + [("top_activation", 1280)]


def _convnext_tiny() -> list[tuple[str, int]]:
    return [
        (f"convnext_tiny_stage_{s}_block_{b}", width)
        for s, (blocks, width) in enumerate([(3, 96), (3, 192), (9, 384), (3, 768)])
        for b in range(blocks)
    ]


MIXED_WIDTHS = [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048]

# Family -> (spatial layers with widths, head layers with widths), as docs/source_models.md says.
EXPECTED = {
    "ResNet50": (_resnet50(), [("avg_pool", 2048), ("predictions", 1000)]),
    "DenseNet121": (
        [
            ("conv2_block6_concat", 256),
            ("conv3_block12_concat", 512),
            ("conv4_block24_concat", 1024),
            ("conv5_block16_concat", 1024),
            ("relu", 1024),
        ],
        [("avg_pool", 1024), ("predictions", 1000)],
    ),
    # MobileNetV2's pooled top is unnamed in Keras: it gets the other families' name.
    "MobileNetV2": (_mobilenet_v2(), [("avg_pool", 1280), ("predictions", 1000)]),
    "EfficientNetB0": (_efficientnet_b0(), [("avg_pool", 1280), ("predictions", 1000)]),
    "ConvNeXtTiny": (
        _convnext_tiny(),
        [("convnext_tiny_head_gap", 768), ("convnext_tiny_head_dense", 1000)],
    ),
    "InceptionV3": (
        [(f"mixed{n}", width) for n, width in enumerate(MIXED_WIDTHS)],
        [("avg_pool", 2048), ("predictions", 1000)],
    ),
}
DOCUMENTED_COUNTS = {
    "ResNet50": 16,
    "DenseNet121": 5,
    "MobileNetV2": 18,
    "EfficientNetB0": 17,
    "ConvNeXtTiny": 18,
    "InceptionV3": 11,
}


def _conf_source_models(project_root: Path) -> dict:
    loader = OmegaConfigLoader(str(project_root / "conf"), base_env="base", default_run_env="local")
    return loader["parameters"]["source_models"]


@pytest.fixture(scope="module")
def few_images(shared_datasets: Path) -> tuple[Path, pd.DataFrame]:
    """Three real caltech101-mini images of three classes."""
    raw = shared_datasets / "caltech101-mini"
    classes = sorted(p.name for p in (raw / "101_ObjectCategories").iterdir())[:3]
    rows = []
    for label, name in enumerate(classes):
        path = sorted((raw / "101_ObjectCategories" / name).glob("*.jpg"))[0]
        relative = path.relative_to(raw).as_posix()
        rows.append((relative.removesuffix(".jpg"), relative, label, name))
    return raw, pd.DataFrame(rows, columns=["image_id", "path", "label", "class_name"])


def test_the_documented_counts_are_the_expected_lists():
    assert {name: len(EXPECTED[name][0]) for name in EXPECTED} == DOCUMENTED_COUNTS


@pytest.mark.slow
@pytest.mark.parametrize("architecture", list(EXPECTED))
def test_each_family_default_layers_through_the_extraction(architecture, few_images):
    raw, index = few_images
    family = FAMILIES[architecture]
    model = build_application(architecture, include_head=True, input_size=family.input_size, seed=0)
    spec = source_model_spec("m", {"m": {"architecture": architecture}})
    assert spec["input_size"] == family.input_size
    layers = available_layers(model, "m", spec)
    spatial, head = EXPECTED[architecture]
    assert layers == [name for name, _ in spatial + head]

    resize, crop = crop_geometry(model.inputs[0].shape[1], 256, 224)
    assert crop == family.input_size
    plan, manifest = plan_embedding(
        index[:2],
        raw,
        SourceModel("m", spec, model, tuple(layers)),
        ExtractionSettings(
            n_crops=1, resize=resize, crop=crop, batch_size=2, shard_size=2, decode_workers=1
        ),
    )
    widths = manifest.groupby("layer", sort=False).size()
    assert list(widths.items()) == spatial + head
    kinds = manifest.drop_duplicates("layer")["layer_kind"].tolist()
    assert kinds == ["spatial"] * len(spatial) + ["head"] * len(head)
    ((_, features, rejects),) = list(plan.compute(plan.shards))
    assert not rejects
    assert features.shape == (2, len(manifest))
    assert np.isfinite(features).all()
    # Logits, not the probabilities of a softmax (checked against the model in the pipeline test).
    assert (features[:, -1000:] < 0).any()


def _save_legacy_h5(model: keras.Model, path: Path) -> None:
    """A Keras legacy HDF5 file, the layout of Keras' own ImageNet downloads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def _catalog(index, raw, source_models, name, out: Path, crop: int = 224) -> DataCatalog:
    settings = {"resize": 256, "crop": crop, "batch_size": 4, "shard_size": 8, "decode_workers": 1}
    return DataCatalog(
        {
            "image_index": MemoryDataset(index),
            "params:raw_dir": MemoryDataset(str(raw)),
            "params:source_models": MemoryDataset(source_models),
            "params:source_model": MemoryDataset(name),
            "params:crops": MemoryDataset(1),
            "params:feature_extraction": MemoryDataset(settings),
            "params:executor": MemoryDataset("local"),
            "params:dask": MemoryDataset({}),
            "embedding": ShardedEmbeddingDataset(path=str(out / "embedding")),
            "embedding_columns": EmbeddingColumnsDataset(path=str(out / "embedding")),
            "feature_manifest": ParquetDataset(filepath=str(out / "feature_manifest.parquet")),
            "extraction_rejects": MemoryDataset(),
        }
    )


@pytest.mark.slow
def test_keras_own_weights_file_through_the_pipeline(
    few_images, project_root, tmp_path, monkeypatch
):
    """MobileNetV2 weights (random here) at Keras' own cache path, found there offline."""
    raw, index = few_images
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.chdir(tmp_path)
    original = build_application("MobileNetV2", include_head=True, input_size=224, seed=3)
    family = FAMILIES["MobileNetV2"]
    _save_legacy_h5(original, tmp_path / "keras_home/models" / family.keras_file)
    source_models = _conf_source_models(project_root)
    catalog = _catalog(index, raw, source_models, "mobilenetv2_imagenet", tmp_path)
    SequentialRunner().run(create_pipeline(), catalog)

    manifest = catalog.load("feature_manifest")
    spatial, head = EXPECTED["MobileNetV2"]
    assert list(manifest.groupby("layer", sort=False).size().items()) == spatial + head
    assert catalog.load("extraction_rejects").empty
    logits_columns = manifest.loc[manifest["layer"] == "predictions", "feature"].tolist()
    embedding = ShardedEmbeddingDataset(path=str(tmp_path / "embedding")).load_columns(
        logits_columns
    )
    assert embedding.index.tolist() == index["image_id"].tolist()
    spec = source_model_spec("mobilenetv2_imagenet", source_models)
    crops = np.concatenate([image_crops(raw / p, 256, 224, 1) for p in index["path"]])
    expected = original.predict_on_batch(preprocess(crops, spec))
    np.testing.assert_allclose(embedding.to_numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_weights_file_without_the_classifier_gives_spatial_layers_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    notop = build_application("MobileNetV2", include_head=False, input_size=224, seed=4)
    _save_legacy_h5(
        notop, tmp_path / "keras_home/models" / FAMILIES["MobileNetV2"].keras_file_notop
    )
    models = {"m": {"architecture": "MobileNetV2"}}
    backbone = load_backbone("m", models, project_root=tmp_path)
    layers = available_layers(backbone, "m", source_model_spec("m", models))
    assert layers == [name for name, _ in EXPECTED["MobileNetV2"][0]]
    np.testing.assert_array_equal(
        backbone.get_layer("Conv1").kernel, notop.get_layer("Conv1").kernel
    )


def test_missing_weights_name_the_file_and_where_keras_looks_and_download_nothing(
    project_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    downloads = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: downloads.append(a))
    source_models = _conf_source_models(project_root)
    with pytest.raises(FileNotFoundError) as raised:
        load_backbone("resnet50_imagenet", source_models, project_root=tmp_path)
    message = str(raised.value)
    cache = tmp_path / "keras_home" / "models"
    assert f"{cache / 'resnet50_weights_tf_dim_ordering_tf_kernels.h5'} not downloaded" in message
    assert f"{tmp_path / 'data/06_models/resnet50_imagenet.weights.h5'} absent" in message
    assert f"Keras looks for its own ImageNet files in {cache}" in message
    assert "--keras-imagenet ResNet50" in message
    # What to put where: Keras' own file, or a file of that layout at the configured path; no
    # "converted" file (nothing converts a keras.applications network) and no README section.
    top, notop = (f"resnet50_weights_tf_dim_ordering_tf_kernels{end}.h5" for end in ("", "_notop"))
    assert f"copy {top} or {notop} into {cache}" in message
    assert (
        f"a weights file of keras.applications.ResNet50's layout at "
        f"{tmp_path / 'data/06_models/resnet50_imagenet.weights.h5'}"
    ) in message
    assert "converted" not in message and "README" not in message
    assert downloads == []


def _user_model() -> keras.Model:
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="down")(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="mine")


@pytest.mark.slow
def test_a_user_keras_file_with_a_layer_list_through_the_pipeline(few_images, tmp_path):
    raw, index = few_images
    keras.utils.set_random_seed(5)
    model = _user_model()
    model.save(tmp_path / "mine.keras")
    source_models = {
        "mine": {
            "architecture": "keras_file",
            "path": str(tmp_path / "mine.keras"),
            "layers": ["c2", "c1", "logits"],
            "preprocessing": "tf",
        }
    }
    catalog = _catalog(index, raw, source_models, "mine", tmp_path)
    SequentialRunner().run(create_pipeline(), catalog)
    manifest = catalog.load("feature_manifest")
    assert list(manifest.groupby("layer", sort=False).size().items()) == [
        ("c2", 6),
        ("c1", 4),
        ("logits", 3),
    ]
    assert manifest.drop_duplicates("layer")["layer_kind"].tolist() == [
        "spatial",
        "spatial",
        "head",
    ]
    embedding = ShardedEmbeddingDataset(path=str(tmp_path / "embedding")).load()
    # The crops follow the model's 64-pixel input: 64 from a shorter side of round(256 * 64 / 224).
    crops = np.concatenate([image_crops(raw / p, 73, 64, 1) for p in index["path"]])
    taps = keras.Model(model.inputs, [model.get_layer(n).output for n in ("c2", "c1", "logits")])
    c2, c1, logits = taps.predict_on_batch(crops.astype(np.float32) / 127.5 - 1.0)
    expected = np.concatenate([c2.mean(axis=(1, 2)), c1.mean(axis=(1, 2)), logits], axis=1)
    np.testing.assert_allclose(embedding.to_numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_user_keras_file_missing_or_without_a_listed_layer_is_refused(tmp_path):
    spec = {"architecture": "keras_file", "path": "mine.keras", "layers": ["c1", "fc9"]}
    models = {"mine": {**spec, "preprocessing": "none"}}
    with pytest.raises(FileNotFoundError, match=r"mine\.keras does not exist"):
        load_backbone("mine", models, project_root=tmp_path)
    _user_model().save(tmp_path / "mine.keras")
    backbone = load_backbone("mine", models, project_root=tmp_path)
    with pytest.raises(ValueError, match=r"'mine'.*no layer\(s\) \['fc9'\].*logits"):
        available_layers(backbone, "mine", source_model_spec("mine", models))
    with pytest.raises(ValueError, match=r"lacks \['preprocessing'\]"):
        source_model_spec("mine", {"mine": spec})


def test_an_unknown_architecture_or_one_without_defaults_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        source_model_spec("m", {"m": {"architecture": "resnet50", "layers": "default"}})
    with pytest.raises(ValueError, match=r"Xception has no default settings.*input_size"):
        source_model_spec("m", {"m": {"architecture": "Xception"}})


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("resnet", lambda x: keras.applications.vgg16.preprocess_input(x)),
        ("inception_v3", lambda x: x / 127.5 - 1.0),
        ("tf", lambda x: x / 127.5 - 1.0),
        (
            "densenet",
            lambda x: (
                (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
            ),
        ),
        ("efficientnet", lambda x: x),
        ("none", lambda x: x),
    ],
)
def test_each_family_uses_its_own_preprocess_input(mode, reference):
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    got = preprocess(images, {"preprocessing": mode})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference(images.astype(np.float32)), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="unknown preprocessing 'imagenet_utils'"):
        preprocess(images, {"preprocessing": "imagenet_utils"})
