"""2-D maps of the embedding (transfer/maps.py): the stratified subsample, the t-SNE after PCA,
the embeddings it is drawn for and the node through Kedro's runner; standardisation and the FNE
(transfer/embeddings.py) against scikit-learn and a loop."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from sklearn.metrics import silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from cnn_feature_behavior.pipelines.transfer import create_pipeline
from cnn_feature_behavior.transfer import maps
from cnn_feature_behavior.transfer.embeddings import Standardisation, fne_values, standardise
from cnn_feature_behavior.transfer.settings import FneSettings, MapSettings

LAYERS = ["conv3_3", "conv5_3", "fc6"]
FAST = {"max_iter": 500, "pca_components": 10, "perplexity": 10, "threads": 1}


def clusters(n_classes=3, per_class=20, n_features=40, separation=12.0, seed=0):
    """Well-separated Gaussian clusters, one per class, in n_features dimensions."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = rng.normal(0, separation, size=(n_classes, n_features))
    return centres[labels] + rng.normal(size=(len(labels), n_features)), labels


def test_standardise_and_fne_against_references():
    rng = np.random.default_rng(1)
    train, test = rng.gamma(2.0, size=(30, 5)), rng.gamma(2.0, size=(10, 5))
    train[:, 3] = 7.0  # constant: no scale, maps to 0
    scaler = StandardScaler().fit(train)
    np.testing.assert_allclose(standardise(test, fitted_on=train), scaler.transform(test), 1e-5)
    assert Standardisation.fit(train).scale[3] == 1.0
    values = rng.normal(size=(20, 6))
    expected = [[1.0 if v > 0.15 else -1.0 if v < -0.25 else 0.0 for v in row] for row in values]
    np.testing.assert_array_equal(fne_values(values), np.array(expected, np.float32))
    with pytest.raises(ValueError, match="must not exceed"):
        fne_values(values, positive=-0.5, negative=0.5)


@pytest.mark.parametrize("max_images", [7, 50, 120])
def test_stratified_subsample_sizes(max_images):
    sizes = [100, 50, 30, 10, 3]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rows = maps.stratified_subsample(labels, max_images, seed=4)
    counts = np.bincount(labels[rows], minlength=len(sizes))
    assert len(rows) == max_images and len(set(rows)) == max_images
    assert (np.diff(rows) > 0).all()
    assert (counts >= 1).all() and (counts <= sizes).all()
    share = np.array(sizes) * max_images / len(labels)
    # Largest remainder, every class kept: each quota within one image of its exact share.
    assert (np.abs(counts - share) < 1 + 1e-9).all(), (counts, share)
    np.testing.assert_array_equal(rows, maps.stratified_subsample(labels, max_images, seed=4))
    assert not np.array_equal(rows, maps.stratified_subsample(labels, max_images, seed=5))


def test_stratified_subsample_keeps_everything_that_fits_and_checks_inputs():
    labels = np.repeat([0, 1], 5)
    np.testing.assert_array_equal(maps.stratified_subsample(labels, 10, 0), np.arange(10))
    assert len(maps.stratified_subsample(np.arange(10), 4, 0)) == 4  # fewer places than classes
    with pytest.raises(ValueError, match="max_images must be at least 1"):
        maps.stratified_subsample(labels, 0, 0)


def test_tsne_is_deterministic_for_a_seed_and_keeps_clusters_apart():
    values, labels = clusters()
    first = maps.tsne_coordinates(values, seed=3, **FAST)
    np.testing.assert_array_equal(first, maps.tsne_coordinates(values, seed=3, **FAST))
    assert first.shape == (len(labels), 2)
    assert silhouette_score(first, labels) > 0.5
    # Every point's nearest neighbours in the map are of its own class.
    knn = KNeighborsClassifier(n_neighbors=5).fit(first, labels)
    assert (knn.predict(first) == labels).all()
    with pytest.raises(ValueError, match="at least 4 images"):
        maps.tsne_coordinates(values[:3])


def embedding_inputs(seed=0):
    values, labels = clusters(n_classes=4, per_class=15, n_features=12, seed=seed)
    feature_layers = np.repeat(["conv3_3", "conv5_3"], 6)
    image_ids = [f"img_{i:03d}" for i in range(len(labels))]
    return values.astype(np.float32), feature_layers, labels, image_ids


def test_embedding_maps_schema_subsample_and_absent_layers(caplog):
    values, feature_layers, labels, image_ids = embedding_inputs()
    settings = MapSettings(
        embeddings=("conv5_3", "fc6", "full_network", "fne"), max_images=40, seed=7, **FAST
    )
    with caplog.at_level(logging.INFO, logger="cnn_feature_behavior.transfer.maps"):
        table = maps.embedding_maps(
            values,
            feature_layers,
            maps.MapImages.of(labels, image_ids, [f"class {k}" for k in range(4)]),
            settings,
            known_layers=LAYERS,
            dataset="digits",
            source_model="vgg16_imagenet",
        )
    assert "names layer fc6, which this embedding of vgg16_imagenet lacks" in caplog.text
    assert list(table.columns) == list(maps.MAP_COLUMNS)
    assert list(pd.unique(table["embedding"])) == ["conv5_3", "full_network", "fne"]
    assert table.groupby("embedding").size().tolist() == [40, 40, 40]
    per_map = table[table["embedding"] == "fne"]
    assert per_map["label"].value_counts().sort_index().tolist() == [10, 10, 10, 10]
    assert (per_map["class_name"] == "class " + per_map["label"].astype(str)).all()
    assert set(per_map["image_id"]) <= set(image_ids)
    assert table[["x", "y"]].notna().all().all()
    assert set(table["dataset"]) == {"digits"} and set(table["source_model"]) == {"vgg16_imagenet"}
    # The same image set in every map, and the same table for the same seed.
    assert len({tuple(rows["image_id"]) for _, rows in table.groupby("embedding")}) == 1
    again = maps.embedding_maps(
        values,
        feature_layers,
        maps.MapImages.of(labels, image_ids, [f"class {k}" for k in range(4)]),
        settings,
        known_layers=LAYERS,
        dataset="digits",
        source_model="vgg16_imagenet",
    )
    pd.testing.assert_frame_equal(table, again)


def test_embedding_maps_name_unknown_embeddings_and_settings():
    values, feature_layers, labels, image_ids = embedding_inputs()
    arguments = dict(known_layers=LAYERS, dataset="d", source_model="m")
    with pytest.raises(ValueError, match=r"unknown embedding\(s\) \['conv9_9'\]"):
        maps.embedding_maps(
            values,
            feature_layers,
            maps.MapImages.of(labels, image_ids, ["a", "b", "c", "d"]),
            MapSettings(embeddings=("conv9_9",)),
            **arguments,
        )
    with pytest.raises(ValueError, match="none is in the embedding"):
        maps.embedding_maps(
            values,
            feature_layers,
            maps.MapImages.of(labels, image_ids, ["a", "b", "c", "d"]),
            MapSettings(embeddings=("fc6",)),
            **arguments,
        )
    with pytest.raises(
        ValueError, match=r"embedding \(60, 11\) must be \(images 60, features 12\)"
    ):
        maps.embedding_maps(
            values[:, :11],
            feature_layers,
            maps.MapImages.of(labels, image_ids, ["a", "b", "c", "d"]),
            MapSettings(),
            **arguments,
        )
    with pytest.raises(ValueError, match="60 labels but 59 image ids"):
        maps.MapImages.of(labels, image_ids[:59], ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"transfer.maps: unknown key\(s\) \['perplexty'\]"):
        MapSettings.from_params({"perplexty": 5})
    with pytest.raises(ValueError, match="max_images must be at least 2"):
        MapSettings.from_params({"max_images": 1})


def _run_maps_node(
    maps_params: dict, source_models: dict, source_model: str, rename: dict | None = None
) -> pd.DataFrame:
    values, feature_layers, labels, image_ids = embedding_inputs(seed=2)
    feature_layers = [(rename or {}).get(layer, layer) for layer in feature_layers]
    features = [f"{layer}/n{k}" for k, layer in enumerate(feature_layers)]
    embedding = pd.DataFrame(values, columns=features, index=pd.Index(image_ids, name="image_id"))
    image_index = pd.DataFrame(
        {"image_id": image_ids, "label": labels, "class_name": [f"class {k}" for k in labels]}
    )
    kinds = ["head" if layer.startswith("fc") else "spatial" for layer in feature_layers]
    manifest = pd.DataFrame({"feature": features, "layer": feature_layers, "layer_kind": kinds})
    inputs = {
        "embedding": embedding,
        "image_index": image_index,
        "feature_manifest": manifest,
        "params:transfer.maps": {**maps_params, "max_images": 30, **FAST},
        "params:transfer.fne": {"positive": 0.15, "negative": -0.25},
        "params:source_models": source_models,
        "params:source_model": source_model,
        "params:dataset": "digits",
    }
    catalog = DataCatalog({name: MemoryDataset(data) for name, data in inputs.items()})
    catalog["embedding_maps"] = MemoryDataset()
    SequentialRunner().run(create_pipeline().only_nodes("transfer.compute_embedding_maps"), catalog)
    return catalog.load("embedding_maps")


def test_maps_of_a_source_model_with_its_own_layer_names_and_default_layers(caplog):
    """VGG's layer names in transfer.maps.embeddings are skipped for a network that has other
    names, with a warning saying what to set; its own layers can be named; a name of no source
    model is still an error; `default` maps this network's own layers."""
    source_models = {
        "vgg16_imagenet": {"layers": LAYERS},
        "resnet": {"architecture": "ResNet50", "layers": "default"},
    }
    rename = {"conv3_3": "conv3_block4_out", "conv5_3": "conv5_block3_out"}
    with caplog.at_level(logging.WARNING, logger="cnn_feature_behavior.transfer.maps"):
        table = _run_maps_node(
            {"embeddings": ["conv3_3", "conv5_block3_out", "fne"]}, source_models, "resnet", rename
        )
    assert table.groupby("embedding").size().to_dict() == {"conv5_block3_out": 30, "fne": 30}
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "names layer conv3_3, which this embedding of resnet" in warning[0]
    assert "(conv3_block4_out, conv5_block3_out)" in warning[0]
    assert "conf/local/parameters.yml" in warning[0] and "`default`" in warning[0]
    with pytest.raises(Exception, match=r"unknown embedding\(s\) \['conv3_block9_out'\]"):
        _run_maps_node({"embeddings": ["conv3_block9_out"]}, source_models, "resnet", rename)
    table = _run_maps_node({"embeddings": "default"}, source_models, "resnet", rename)
    assert list(pd.unique(table["embedding"])) == [
        "conv3_block4_out",
        "conv5_block3_out",
        "full_network",
        "fne",
    ]


VGG16_LAYERS = [
    *(f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for i in range(1, n + 1)),
    "fc6",
    "fc7",
]


@pytest.mark.parametrize(
    ("layers", "kinds", "expected"),
    [
        (VGG16_LAYERS, ["spatial"] * 13 + ["head"] * 2, ["conv3_3", "conv5_3"]),
        (VGG16_LAYERS[:13], ["conv"] * 13, ["conv3_3", "conv5_3"]),  # conv-only, earlier kinds
        (
            [f"b{k}" for k in range(16)] + ["avg_pool", "logits"],
            ["spatial"] * 16 + ["head"] * 2,
            ["b7", "b15"],
        ),
        (["embedding", "logits"], ["head", "head"], ["embedding", "logits"]),
        (["only"], ["spatial"], ["only"]),
    ],
)
def test_default_maps_are_the_middle_and_last_spatial_layers(layers, kinds, expected):
    per_feature = [layer for layer in layers for _ in range(3)]
    per_feature_kinds = [kind for kind in kinds for _ in range(3)]
    chosen = maps.default_embeddings(per_feature, per_feature_kinds)
    assert chosen == (*expected, "full_network", "fne")
    settings = maps.for_layers(MapSettings.from_params({}), per_feature, per_feature_kinds)
    assert settings.embeddings == chosen
    listed = maps.for_layers(MapSettings.from_params({"embeddings": ["fne"]}), layers, kinds)
    assert listed.embeddings == ("fne",)
    with pytest.raises(ValueError, match="a list of names or `default`"):
        MapSettings.from_params({"embeddings": "fne"})


def test_the_project_maps_default_layers(project_root):
    from builders.project import project_config

    assert project_config(project_root)["parameters"]["transfer"]["maps"]["embeddings"] == "default"


def test_embedding_maps_node_through_kedro_runner():
    values, feature_layers, labels, image_ids = embedding_inputs(seed=2)
    features = [f"{layer}/n{k}" for k, layer in enumerate(feature_layers)]
    embedding = pd.DataFrame(values, columns=features, index=pd.Index(image_ids, name="image_id"))
    image_index = pd.DataFrame(
        {
            "image_id": image_ids,
            "path": [f"{i}.png" for i in image_ids],
            "label": labels,
            "class_name": [f"class {k}" for k in labels],
        }
    )
    manifest = pd.DataFrame(
        {
            "feature": features,
            "layer": feature_layers,
            "filter": np.arange(len(features)),
            "layer_kind": "conv",
        }
    )
    inputs = {
        "embedding": embedding,
        "image_index": image_index,
        "feature_manifest": manifest,
        "params:transfer.maps": {"embeddings": ["conv3_3", "fne"], "max_images": 30, **FAST},
        "params:transfer.fne": {"positive": 0.15, "negative": -0.25},
        "params:source_models": {"vgg16_imagenet": {"layers": LAYERS}},
        "params:source_model": "vgg16_imagenet",
        "params:dataset": "digits",
    }
    catalog = DataCatalog({name: MemoryDataset(data) for name, data in inputs.items()})
    catalog["embedding_maps"] = MemoryDataset()
    pipeline = create_pipeline().only_nodes("transfer.compute_embedding_maps")
    SequentialRunner().run(pipeline, catalog)
    table = catalog.load("embedding_maps")
    assert list(table.columns) == list(maps.MAP_COLUMNS)
    assert table.groupby("embedding").size().to_dict() == {"conv3_3": 30, "fne": 30}


def test_embedding_values_per_name():
    values, feature_layers, _, _ = embedding_inputs()
    settings = MapSettings(fne=FneSettings(positive=0.5, negative=-0.5))
    full = maps.embedding_values("full_network", values, feature_layers, settings)
    np.testing.assert_allclose(full, StandardScaler().fit_transform(values), atol=1e-5)
    fne = maps.embedding_values("fne", values, feature_layers, settings)
    np.testing.assert_array_equal(fne, np.sign(full) * (np.abs(full) > 0.5))
    layer = maps.embedding_values("conv5_3", values, feature_layers, settings)
    np.testing.assert_allclose(layer, full[:, 6:], atol=1e-5)
    assert maps.embedding_values("fc6", values, feature_layers, settings) is None
