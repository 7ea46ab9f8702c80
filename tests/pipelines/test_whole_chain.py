"""The whole chain as a user runs it on their own images: imagefolder -> study -> export -> predict.

caltech101-mini's real photographs rearranged into train / test folders (hard links, or copies
where the file system refuses them), a few images per class, VGG16's default weights, 1 crop.
The exported classifier's top-1 on the test image files must agree with the transfer
evaluation's refit of the same configuration on their embedding rows on at least 99.5% of them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders.project import PROJECT_ROOT, kedro_run, own_models_folder
from kedro.config import OmegaConfigLoader

from cnn_feature_behavior.export.fit import ExportSettings, StudyTables, fit_for_export
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS
from cnn_feature_behavior.transfer.settings import TransferSettings

WEIGHTS = PROJECT_ROOT / "data" / "06_models" / "vgg16_imagenet_conv.h5"
TRAIN, TEST = 5, 5  # images per class


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy (a symbolic link would leave raw_dir)
        shutil.copyfile(source, target)


@pytest.fixture
def my_images(tmp_path, shared_datasets) -> Path:
    """caltech101-mini's object classes as <split>/<class>/<image>: the first TRAIN images of
    each class train, the next TEST test."""
    source = shared_datasets / "caltech101-mini" / "101_ObjectCategories"
    raw = tmp_path / "my_images"
    classes = sorted(p for p in source.iterdir() if p.is_dir() and p.name != "BACKGROUND_Google")
    for folder in classes:
        images = sorted(folder.glob("*.jpg"))
        if len(images) < TRAIN + TEST:
            pytest.skip(f"{folder} holds {len(images)} images, fewer than {TRAIN + TEST}")
        for split, chosen in (("train", images[:TRAIN]), ("test", images[TRAIN : TRAIN + TEST])):
            for image in chosen:
                _place(image, raw / split / folder.name / image.name)
    return raw


def _refit(project: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """The transfer evaluation's refit of the exported configuration: {test image id: top-1}."""
    card = json.loads(
        (project / "data/06_models/vgg16_imagenet/imagefolder/model_card.json").read_text()
    )
    read = pd.read_parquet
    tables = StudyTables(
        embedding=ShardedEmbeddingDataset(
            str(project / "data/04_feature/vgg16_imagenet/imagefolder/embedding")
        ).load(),
        image_index=read(project / "data/02_intermediate/imagefolder/image_index.parquet"),
        feature_manifest=read(
            project / "data/04_feature/vgg16_imagenet/imagefolder/feature_manifest.parquet"
        ),
        transfer_splits=read(project / "data/05_model_input/imagefolder/transfer_splits.parquet"),
        transfer_results=read(
            project / "data/07_model_output/vgg16_imagenet/transfer_results/imagefolder.parquet"
        ),
    )
    params = OmegaConfigLoader(str(project / "conf"), **CONFIG_LOADER_ARGS, env="imagefolder")[
        "parameters"
    ]
    fit = fit_for_export(
        tables,
        ExportSettings(embedding=card["embedding"]["configuration"]),
        TransferSettings.from_params(params["transfer"], params["dks"], params["calibration"]),
    )
    names = fit.linear_map.class_names
    return {i: names[p] for i, p in zip(fit.test_image_ids, fit.test_predictions)}, names


@pytest.mark.slow
def test_imagefolder_study_export_predict_on_real_photographs(project_copy, my_images):
    if not WEIGHTS.is_file():
        pytest.skip(f"default weights not fetched ({WEIGHTS} absent): run `make setup`")
    own_models_folder(project_copy)
    run = ("--env", "imagefolder")
    # The report's top-feature patches from 8 pool images (100 by default): the same steps.
    # The study's parameters go with every run after it: the lineage refuses outputs made with
    # other settings than the run's.
    settings = f"raw_dir={my_images},crops=1,reporting.feature_visualisation.max_pool_images=8"
    study = kedro_run(project_copy, *run, "--params", settings)
    assert study.returncode == 0, (study.stdout + study.stderr)[-5000:]
    export = kedro_run(
        project_copy,
        *run,
        "--pipelines",
        "export",
        "--params",
        # A few test images for the export's check; predict does all.
        f"{settings},export.check_images=4",
    )
    assert export.returncode == 0, (export.stdout + export.stderr)[-5000:]
    predict = kedro_run(
        project_copy,
        *run,
        "--pipelines",
        "predict",
        "--params",
        f"{settings},predict.images={my_images / 'test'}",
    )
    assert predict.returncode == 0, (predict.stdout + predict.stderr)[-5000:]

    card = json.loads(
        (project_copy / "data/06_models/vgg16_imagenet/imagefolder/model_card.json").read_text()
    )
    assert card["training"] == {"split_source": "official", "repetition": 0, "n_train": 8 * TRAIN}
    assert card["test"]["n_test"] == 8 * TEST
    assert card["check"]["n_images"] == 4 and card["check"]["n_agreeing"] == 4, card["check"]
    predictions = pd.read_csv(
        project_copy / "data/07_model_output/vgg16_imagenet/imagefolder/predictions.csv"
    )
    assert len(predictions) == 8 * TEST
    refit, class_names = _refit(project_copy)
    below = [Path(p).relative_to(my_images).with_suffix("").as_posix() for p in predictions["path"]]
    agree = np.mean([refit[i] == top for i, top in zip(below, predictions["class_1"])])
    truth = [i.split("/")[1] for i in below]
    accuracy = np.mean(np.array(truth) == predictions["class_1"].to_numpy())
    print(
        f"whole chain: {card['embedding']['configuration']}, agreement with the refit "
        f"{agree:.3f} on {len(below)} test images, accuracy {accuracy:.3f} "
        f"(card {card['test']['accuracy']:.3f})"
    )
    assert agree >= 0.995
    assert accuracy == pytest.approx(card["test"]["accuracy"], abs=1 / len(below) + 1e-9)
    assert accuracy >= 0.7  # 8 object classes from ImageNet features: far above chance (0.125)
    assert sorted(class_names) == sorted(set(truth))
