"""A whole study in seconds: a project copy with a tiny Keras source model and a few images.

For tests that must go through Kedro's session (hooks, locks, partial runs) without paying for
VGG16: `tiny` is a user `.keras` model (two 3x3 convolutions and a 3-class head, inputs of any
size, fed 32-pixel crops), the dataset three classes of small random PNG images in the `digits`
layout (one folder per class) under the project's data/01_raw, so that a copy of the project
folder is the same study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builders.project import make_project_copy

CLASSES = ("a", "b", "c")
RAW_DIR = "data/01_raw/tiny_digits"
TINY_PARAMETERS = """\
# A tiny source model for tests (tests/builders/tiny_study.py).
source_models:
  tiny:
    architecture: keras_file
    path: tiny.keras
    layers: [c1, c2, logits]
    preprocessing: tf
"""
# The study's settings, as `--params` would give them.
RUNTIME_PARAMS = {
    "raw_dir": RAW_DIR,
    "source_model": "tiny",
    "crops": 1,
    "max_images_per_class": None,
    "feature_extraction": {"resize": 40, "crop": 32},
}


def tiny_study(folder: Path, images_per_class: int = 6) -> Path:
    """A project copy in `folder` that knows the `tiny` model and holds its images."""
    import keras

    project = make_project_copy(folder)
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(pooled)
    keras.Model(inputs, outputs, name="tiny").save(project / "tiny.keras")
    # In the env the tests run (digits): merged key by key into base's source_models.
    (project / "conf" / "digits" / "parameters_tiny.yml").write_text(TINY_PARAMETERS)
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (project / RAW_DIR / name).mkdir(parents=True)
        for k in range(images_per_class):
            write_image(project / RAW_DIR / name / f"{k:03d}.png", rng, label)
    return project


def write_image(path: Path, rng: np.random.Generator, label: int) -> None:
    """A 24 x 20 RGB image whose mean colour depends on its class."""
    pixels = rng.integers(0, 120, (20, 24, 3)) + 60 * np.eye(3, dtype=int)[label]
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def session_run(project: Path, *pipelines: str, **params: Any) -> None:
    """Run the tiny study's `pipelines` (all when none) in this process, as `kedro run --env
    digits --params ...` would, with `params` over RUNTIME_PARAMS; the working directory must be
    `project`."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    runtime = {**RUNTIME_PARAMS, **params}
    with KedroSession.create(project_path=project, env="digits", runtime_params=runtime) as session:
        session.run(pipeline_names=list(pipelines) or None)
