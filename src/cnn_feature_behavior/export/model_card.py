"""What an exported model is: its metadata (inside the `.keras` file) and its model card.

The metadata says what the model takes and gives (the input's shape and how its crops are cut,
the class names in output order, the features it reads), from what (dataset, source model and
its weights' digest, the embedding) and by what version of the project. The model card
(`model_card.json` and `.md`) adds how the classifier was fitted and how well it does: the
solver and its regularisation, the training images, the test accuracy with its 95% interval
(Wilson score, scipy), the study's accuracy of the same configuration over its repetitions, and
the check of the written file against the refit.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from scipy.stats import binomtest

import cnn_feature_behavior
from cnn_feature_behavior.export.agreement import AgreementCheck
from cnn_feature_behavior.export.configuration import configuration_label
from cnn_feature_behavior.export.fit import ExportFit
from cnn_feature_behavior.export.keras_model import Geometry, Taps
from cnn_feature_behavior.transfer.settings import LINEAR_SVC, LOGISTIC, RIDGE

CROP_RULES = {
    1: "the centre crop of the image resized (bilinear) to shorter side `resize`",
    10: "the four corner crops and the centre crop of the image resized (bilinear) to shorter "
    "side `resize`, then the horizontal mirror of each, in that order",
}
STRENGTH_NAMES = {"regularisation_c": "C", "ridge_alpha": "ridge alpha"}
SOLVER_TEXT = {
    LOGISTIC: "multinomial logistic regression (L2 penalty, scikit-learn's objective); the "
    "probabilities are the model's own",
    RIDGE: "ridge regression on one-hot class targets (alpha = 1 / C); the softmax of its scores "
    "ranks the classes but is not a calibrated probability",
    LINEAR_SVC: "LinearSVC, one-vs-rest (squared hinge); the softmax of its scores ranks the "
    "classes but is not a calibrated probability",
}


@dataclass(frozen=True)
class SourceDescription:
    """The source model an export was built from."""

    name: str
    architecture: str
    preprocessing: str
    weights_digest: str


def model_metadata(
    fit: ExportFit, source: SourceDescription, geometry: Geometry, taps: Taps, dataset: str
) -> dict[str, Any]:
    """The `cnn_feature_behavior` metadata of the classifier file (model_file.py)."""
    return {
        "dataset": dataset,
        "class_names": list(fit.class_names),
        "input": {
            "shape": [None, geometry.n_crops, geometry.crop, geometry.crop, 3],
            "pixels": "RGB values 0..255 as float32 (the preprocessing is inside the model)",
            "crops": geometry.n_crops,
            "resize": geometry.resize,
            "crop": geometry.crop,
            "crop_rule": CROP_RULES[geometry.n_crops],
        },
        "output": "class probabilities (softmax), in class_names order",
        "embedding": {
            "configuration": fit.configuration.spelling,
            "label": configuration_label(fit.configuration),
            "layers": list(taps.layers),
            "n_features": len(fit.feature_names),
            "three_valued": fit.linear_map.fne is not None,
            "fne_thresholds": _thresholds(fit),
        },
        "source_model": {
            "name": source.name,
            "architecture": source.architecture,
            "preprocessing": source.preprocessing,
            "weights_digest": source.weights_digest,
        },
        "project_version": cnn_feature_behavior.__version__,
        "keras_version": keras.__version__,
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def features_metadata(metadata: dict[str, Any], feature_names: Sequence[str]) -> dict[str, Any]:
    """The features file's metadata: the classifier's, its output the features read."""
    return {
        **{k: v for k, v in metadata.items() if k != "class_names"},
        "output": "the features the classifier reads: standardised with the training images' "
        "statistics (three-valued -1 / 0 / 1 for the FNE), in feature_names order",
        "feature_names": list(feature_names),
    }


def _thresholds(fit: ExportFit) -> dict[str, float] | None:
    thresholds = fit.linear_map.fne
    return None if thresholds is None else {"positive": thresholds[0], "negative": thresholds[1]}


def model_card(fit: ExportFit, metadata: dict[str, Any], check: AgreementCheck) -> dict[str, Any]:
    """The model card as a dict (model_card.json)."""
    correct = int(np.sum(fit.test_labels == fit.test_predictions))
    n_test = len(fit.test_labels)
    interval = binomtest(correct, n_test).proportion_ci(0.95, method="wilson") if n_test else None
    rows, row = fit.study_rows, fit.study_row
    linear_map = fit.linear_map
    return {
        "dataset": metadata["dataset"],
        "source_model": metadata["source_model"],
        "embedding": {**metadata["embedding"], "chosen_by": fit.chosen_by},
        "classes": metadata["class_names"],
        "classifier": {
            "solver": linear_map.solver,
            "description": SOLVER_TEXT[linear_map.solver],
            "regularisation": dict(linear_map.regularisation),
            "c_at_grid_edge": None if row is None else bool(row["c_at_grid_edge"]),
            "c_chosen_on": "cross-validation on the training images (the transfer evaluation's "
            "folds and criterion: transfer.refit.refit_configuration)",
        },
        "training": {
            "split_source": fit.split_source,
            "repetition": fit.repetition,
            "n_train": fit.n_train,
        },
        "test": {
            "n_test": n_test,
            "n_correct": correct,
            "accuracy": correct / n_test if n_test else None,
            "mean_per_class_accuracy": fit.mean_per_class_accuracy if n_test else None,
            "interval_95": None if interval is None else [interval.low, interval.high],
            "interval_method": "Wilson score (scipy.stats.binomtest)",
        },
        "study": _study_accuracy(rows),
        "check": {
            "n_images": check.n_images,
            "n_agreeing": check.n_agreeing,
            "agreement": None if not check.n_images else check.agreement,
            "disagreeing": list(check.disagreeing),
            "what": "top-1 of the written classifier.keras on test image files against the refit's "
            "top-1 on their embedding rows",
        },
        "input": metadata["input"],
        "files": {
            "classifier": "classifier.keras",
            "features": "features.keras",
            "custom_objects": "none: Keras' own layers only",
        },
        "project_version": metadata["project_version"],
        "keras_version": metadata["keras_version"],
        "date": metadata["exported"],
    }


def _study_accuracy(rows) -> dict[str, Any]:
    if rows.empty:
        return {"repetitions": 0, "note": "this configuration is not a row of transfer_results"}
    accuracy = rows["accuracy"].astype(float)
    per_class = rows["mean_per_class_accuracy"].astype(float)
    return {
        "repetitions": int(rows["repetition"].nunique()),
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std": float(accuracy.std()) if len(accuracy) > 1 else None,
        "mean_per_class_accuracy_mean": float(per_class.mean()),
        "regularisation_c": sorted({float(c) for c in rows["regularisation_c"].dropna()}),
        "solver": sorted({str(s) for s in rows.get("solver", rows["classifier"])}),
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown (model_card.md)."""
    source, embedding, classifier = card["source_model"], card["embedding"], card["classifier"]
    test, study, check, geometry = card["test"], card["study"], card["check"], card["input"]
    accuracy = "n/a" if test["accuracy"] is None else f"{test['accuracy']:.3f}"
    if test["interval_95"] is not None:
        low, high = test["interval_95"]
        accuracy += (
            f" (95% interval {low:.3f} to {high:.3f}, {test['n_correct']} of {test['n_test']})"
        )
    if test.get("mean_per_class_accuracy") is not None:
        accuracy += f"; mean per-class accuracy {test['mean_per_class_accuracy']:.3f}"
    lines = [
        f"# Model card: {card['dataset']} with {source['name']}",
        "",
        f"- **Dataset**: {card['dataset']}, {len(card['classes'])} classes: "
        + ", ".join(card["classes"][:20])
        + (", ..." if len(card["classes"]) > 20 else ""),
        f"- **Source model**: {source['name']} ({source['architecture']}, preprocessing "
        f"{source['preprocessing']}, weights digest {source['weights_digest']})",
        f"- **Embedding**: {embedding['label']} (`{embedding['configuration']}`), "
        f"{embedding['n_features']:,} feature{'s' if embedding['n_features'] != 1 else ''} "
        f"from {', '.join(embedding['layers'])}; "
        f"chosen: {embedding['chosen_by']}",
        f"- **Classifier**: {classifier['description']}; "
        + ", ".join(f"{STRENGTH_NAMES[k]} = {v:g}" for k, v in classifier["regularisation"].items())
        + (" (at the edge of the searched grid)" if classifier["c_at_grid_edge"] else "")
        + f", chosen by {classifier['c_chosen_on']}",
        f"- **Training images**: {card['training']['n_train']} ({card['training']['split_source']} "
        f"split, repetition {card['training']['repetition']})",
        f"- **Test accuracy**: {accuracy}",
        f"- **The study, same configuration**: {_study_text(study)}",
        f"- **Check of the written file**: {_check_text(check)}",
        f"- **Crops**: {geometry['crops']} ({geometry['crop_rule']}; resize {geometry['resize']}, "
        f"crop {geometry['crop']})",
        f"- **Input**: shape {geometry['shape']}, {geometry['pixels']}",
        f"- **Exported**: {card['date']} by cnn_feature_behavior {card['project_version']}, "
        f"Keras {card['keras_version']}",
        "",
        "## Use",
        "",
        "```python",
        "import json, zipfile, keras",
        'model = keras.saving.load_model("classifier.keras")  # no custom objects',
        'meta = json.loads(zipfile.ZipFile("classifier.keras").read("metadata.json"))',
        'class_names = meta["cnn_feature_behavior"]["class_names"]',
        "probabilities = model.predict(crops)  # crops: " + str(geometry["shape"]),
        "```",
        "",
        "`features.keras` gives the features the classifier reads (same input). With this "
        "project: `kedro run --pipelines predict --params predict.images=<folder>`.",
        "",
    ]
    return "\n".join(lines)


def _study_text(study: dict[str, Any]) -> str:
    if not study["repetitions"]:
        return study["note"]
    text = (
        f"mean per-class accuracy {study['mean_per_class_accuracy_mean']:.3f}, mean test "
        f"accuracy {study['accuracy_mean']:.3f}"
    )
    if study["accuracy_std"] is not None:
        text += f" ± {study['accuracy_std']:.3f}"
    return (
        text + f" over {study['repetitions']} repetition(s) (solver {', '.join(study['solver'])})"
    )


def _check_text(check: dict[str, Any]) -> str:
    if not check["n_images"]:
        return "not run (export.check_images = 0)"
    return (
        f"{check['n_agreeing']} of {check['n_images']} test images get the refit's top-1 "
        f"({100 * check['agreement']:.1f}%)"
    )
