"""The export and predict pipelines after a study, through `kedro run`, on a tiny network.

A user's own images (imagefolder, with train / test folders), a seeded tiny VGG-shaped network:
the study's transfer, then export (the Keras file, its features model, the model card) and
predict on a folder of new images with one unreadable file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders.project import kedro_run, own_models_folder
from PIL import Image

from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.extraction.source_models.weight_files import write_legacy_h5

COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (50, 60, 210)}
PER_SPLIT = {"train": 6, "test": 4}


def _photo(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 40, (40, 52, 3))
    pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _tiny_study_config(project: Path, weights: Path) -> None:
    model = build_tiny_vgg(seed=1)
    write_legacy_h5(
        {
            layer.name: tuple(np.asarray(w) for w in layer.weights)
            for layer in model.layers
            if layer.weights
        },
        weights,
    )
    with open(project / "conf" / "imagefolder" / "parameters.yml", "a") as config:
        config.write(
            "source_models:\n"
            "  tiny:\n"
            "    architecture: vgg16\n"
            "    preprocessing: caffe\n"
            "    layers: [conv1_1, conv2_2, conv3_3, conv4_1, conv5_3, fc6, fc7]\n"
            f"    weights: [{{source: file, path: {weights}}}]\n"
        )


@pytest.mark.slow
def test_study_then_export_then_predict(project_copy, tmp_path):
    own_models_folder(project_copy)
    raw = tmp_path / "my_images"
    for split, count in PER_SPLIT.items():
        for k, (name, colour) in enumerate(COLOURS.items()):
            for i in range(count):
                _photo(raw / split / name / f"{name}{i}.png", colour, 100 * k + 10 * i + len(split))
    new = tmp_path / "new_photos"
    _photo(new / "a" / "reddish.png", COLOURS["red"], 999)
    _photo(new / "b" / "c" / "bluish.jpg", COLOURS["blue"], 998)
    (new / "b" / "truncated.png").write_bytes((new / "a" / "reddish.png").read_bytes()[:100])
    _tiny_study_config(project_copy, tmp_path / "tiny.h5")
    params = (
        f"raw_dir={raw},source_model=tiny,crops=1,feature_extraction.crop=32,"
        f"feature_extraction.resize=36,predict.images={new}"
    )

    early = kedro_run(
        project_copy, "--env", "imagefolder", "--pipelines", "predict", "--params", params
    )
    assert early.returncode != 0
    assert "kedro run --env imagefolder --pipelines export --params source_model=tiny" in " ".join(
        (early.stdout + early.stderr).split()
    )

    result = kedro_run(
        project_copy,
        "--env",
        "imagefolder",
        "--pipelines",
        "ingestion,feature_extraction,transfer,export,predict",
        "--params",
        params,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]

    exported = project_copy / "data" / "06_models" / "tiny" / "imagefolder"
    # Each beside its lineage record (docs/reliability.md, "Lineage").
    files = ["classifier.keras", "features.keras", "model_card.json", "model_card.md"]
    records = [f".{name}.lineage.json" for name in files]
    assert sorted(p.name for p in exported.iterdir()) == sorted(files + records)
    metadata = json.loads(zipfile.ZipFile(exported / "classifier.keras").read("metadata.json"))
    assert metadata["cnn_feature_behavior"]["class_names"] == ["blue", "green", "red"]
    card = json.loads((exported / "model_card.json").read_text())
    transfer = pd.read_parquet(
        project_copy / "data/07_model_output/tiny/transfer_results/imagefolder.parquet"
    )
    assert set(transfer["split_source"]) == {"official"}  # the train / test folders
    assert card["training"] == {"split_source": "official", "repetition": 0, "n_train": 18}
    assert card["test"]["n_test"] == 12
    assert card["check"]["n_images"] == 12 and card["check"]["n_agreeing"] == 12
    low, high = card["test"]["interval_95"]
    assert low <= card["test"]["accuracy"] <= high
    assert card["embedding"]["chosen_by"].startswith("the transfer verdict's pick")
    # The verdict's pick: its accuracy in the study is the best of the rows the verdict names.
    assert (
        card["study"]["accuracy_mean"]
        >= transfer.loc[transfer["embedding"] == "full_network", "accuracy"].max() - 1e-12
        or card["embedding"]["configuration"] != "full_network"
    )
    assert "Test accuracy" in (exported / "model_card.md").read_text()

    output = project_copy / "data" / "07_model_output" / "tiny" / "imagefolder"
    predictions = pd.read_csv(output / "predictions.csv")
    assert predictions["path"].tolist() == [f"{new}/a/reddish.png", f"{new}/b/c/bluish.jpg"]
    assert (
        predictions[["class_1", "class_2", "class_3"]].apply(set, axis=1).tolist()
        == [set(COLOURS)] * 2
    )
    assert "class_4" not in predictions.columns  # 3 classes: the top 3
    rejects = pd.read_csv(output / "prediction_rejects.csv")
    assert rejects["path"].tolist() == [f"{new}/b/truncated.png"]
    assert rejects["reason"].iloc[0].startswith("cannot decode")
