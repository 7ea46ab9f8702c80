"""The whole study on a real 2-class dataset: two breeds of the shared pets-mini, 1 crop.

scikit-learn keeps one coefficient row for two classes; the transfer evaluation once read a
second column of it and crashed. Every stage must take two classes, through `kedro run`.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from builders.project import PROJECT_ROOT, kedro_run

WEIGHTS = PROJECT_ROOT / "data" / "06_models" / "vgg16_imagenet_conv.h5"
BREEDS = ("Abyssinian", "Bengal")


@pytest.fixture
def two_breeds(tmp_path, shared_datasets):
    """pets-mini with two of its breeds: copies of the images (links out of raw_dir are rejects),
    the official list's lines."""
    source = shared_datasets / "pets-mini"
    raw = tmp_path / "pets-two"
    (raw / "images").mkdir(parents=True)
    (raw / "annotations").mkdir()
    for image in sorted((source / "images").iterdir()):
        if image.name.rsplit("_", 1)[0] in BREEDS:
            shutil.copyfile(image, raw / "images" / image.name)
    lines = (source / "annotations" / "list.txt").read_text().splitlines()
    kept = [line for line in lines if line.startswith("#") or line.rsplit("_", 1)[0] in BREEDS]
    (raw / "annotations" / "list.txt").write_text("\n".join(kept) + "\n")
    if len(list((raw / "images").iterdir())) != 40:
        pytest.skip(f"pets-mini does not hold 20 images of each of {BREEDS}")
    return raw


@pytest.mark.slow
def test_full_study_on_two_classes(project_copy, two_breeds):
    if not WEIGHTS.is_file():
        pytest.skip(f"default weights not fetched ({WEIGHTS} absent): run `make setup`")
    result = kedro_run(
        project_copy, "--env", "catsdogs", "--params", f"raw_dir={two_breeds},crops=1"
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    model_output = project_copy / "data" / "07_model_output" / "vgg16_imagenet"
    transfer = pd.read_parquet(model_output / "transfer_results" / "catsdogs.parquet")
    assert (transfer["n_train"] == 20).all() and (transfer["n_test"] == 20).all()
    # Two breeds of cat apart from conv5_3 on ImageNet features: well above chance (0.5).
    layers = transfer[transfer["embedding"] == "layer"].groupby("layer")["accuracy"].mean()
    assert layers["conv5_3"] >= 0.75, layers.to_dict()
    report = project_copy / "data" / "08_reporting" / "vgg16_imagenet" / "catsdogs" / "report.html"
    assert report.is_file()
