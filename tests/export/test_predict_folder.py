"""Predicting a folder: every image at any depth, top classes, unreadable files listed."""

from __future__ import annotations

import numpy as np
import pytest
from builders.exported_models import exported_classifier, random_linear_map
from PIL import Image

from cnn_feature_behavior.export.keras_model import Geometry
from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.export.predict import PredictSettings, predict_folder
from cnn_feature_behavior.extraction.crops import image_crops
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.ingestion.image_checks import ImageLimits

LAYERS = ["conv2_1", "conv5_3"]
CLASSES = ("ant", "bee", "cat", "dog", "eel", "fox")


def exported_model(n_crops: int) -> ExportedModel:
    return exported_classifier(
        build_tiny_vgg(include_fc=False, input_size=None, seed=9),
        LAYERS,
        lambda manifest: random_linear_map(
            np.arange(len(manifest)), CLASSES, standardise=False, seed=2
        ),
        Geometry(n_crops, 40, 32),
    )


def photo(path, seed: int, size=(48, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "new_photos"
    photo(root / "garden" / "1.png", 1)
    photo(root / "garden" / "deeper" / "2.jpg", 2, (70, 41))
    photo(root / "3.JPG", 3)
    good = (root / "garden" / "1.png").read_bytes()
    (root / "garden" / "broken.png").write_bytes(good[: len(good) // 3])
    (root / "notes.txt").write_text("not an image")
    photo(root / ".thumbs" / "4.png", 4)
    return root


@pytest.mark.parametrize("n_crops", [1, 10])
def test_every_image_below_the_folder_gets_its_top_classes(folder, n_crops):
    exported = exported_model(n_crops)
    settings = PredictSettings(top_k=5, batch_size=2, decode_workers=2)

    predictions, rejects = predict_folder(exported, folder, settings, shown_as="new_photos")

    assert predictions["path"].tolist() == [
        "new_photos/3.JPG",
        "new_photos/garden/1.png",
        "new_photos/garden/deeper/2.jpg",
    ]
    assert list(predictions.columns) == ["path"] + [
        f"{kind}_{i}" for i in range(1, 6) for kind in ("class", "probability")
    ]
    for row, name in zip(
        predictions.itertuples(index=False), ("3.JPG", "garden/1.png", "garden/deeper/2.jpg")
    ):
        crops = image_crops(folder / name, 40, 32, n_crops)
        expected = exported.model.predict_on_batch(crops[None].astype(np.float32))[0]
        order = np.argsort(-expected)[:5]
        assert [row[1 + 2 * i] for i in range(5)] == [CLASSES[j] for j in order]
        np.testing.assert_allclose([row[2 + 2 * i] for i in range(5)], expected[order], rtol=1e-4)
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert set(reasons) == {
        "new_photos/.thumbs/4.png",
        "new_photos/garden/broken.png",
        "new_photos/notes.txt",
    }
    assert reasons["new_photos/garden/broken.png"].startswith("cannot decode")
    assert reasons["new_photos/notes.txt"] == "not an image file (suffix .txt)"
    assert set(rejects["stage"]) == {"predict"}


def test_one_image_file_is_classified_and_a_folder_without_images_is_an_error(folder, tmp_path):
    exported = exported_model(1)
    predictions, rejects = predict_folder(
        exported, folder / "3.JPG", PredictSettings(top_k=2), shown_as="in/3.JPG"
    )
    assert predictions["path"].tolist() == ["in/3.JPG"] and rejects.empty
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("nothing to see")
    with pytest.raises(ValueError, match="predict.images: no image file under .*empty.*readme.md"):
        predict_folder(exported, tmp_path / "empty", PredictSettings(top_k=2))
    with pytest.raises(FileNotFoundError, match="predict.images: .*absent is neither"):
        predict_folder(exported, tmp_path / "absent", PredictSettings(top_k=2))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="predict.top_k"):
        PredictSettings(top_k=0).check()
    with pytest.raises(ValueError, match="predict.batch_size"):
        PredictSettings(batch_size=0).check()


def test_an_image_beyond_ingestions_size_limits_is_listed(tmp_path):
    photo(tmp_path / "ok.png", 1)
    photo(tmp_path / "panorama.png", 2, size=(300, 10))
    settings = PredictSettings(limits=ImageLimits(max_aspect_ratio=20))
    predictions, rejects = predict_folder(exported_model(1), tmp_path, settings, shown_as="in")
    assert predictions["path"].tolist() == ["in/ok.png"]
    assert rejects["path"].tolist() == ["in/panorama.png"]
    assert "aspect ratio 30:1 (300 x 10) is above the limit 20" in rejects["reason"].iloc[0]
