"""The 1,000 ImageNet (ILSVRC-2012) classes in the standard order of classifier outputs.

The order is the sorted WordNet ids (`n01440764` tench ... `n15075141` toilet tissue), the order
of the ILSVRC-2012 devkit's class folders and of every ImageNet classifier's 1,000 logits
(EfficientNet-Lite0's included). The list is read, without any download at run time, from the
pinned `timm==1.0.15` wheel (Apache-2.0), which ships it as `timm/data/_info/imagenet_synsets.txt`
with the English names in `imagenet_synset_to_lemma.txt`; `make setup` fetches the wheel
(hash-checked, no dependencies installed: only these two text files are read).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    DEFAULT_WHEEL_DIR,
    PinnedWheel,
    verify_wheel,
)

IMAGENET_CLASSES_WHEEL = PinnedWheel(
    name="timm",
    requirement="timm==1.0.15",
    file_name="timm-1.0.15-py3-none-any.whl",
    sha256="5a3dc460c24e322ecc7fd1f3e3eb112423ddee320cb059cc1956fbc9731748ef",
    member="timm/data/_info/imagenet_synsets.txt",
    description="the 1,000 ImageNet-1k WordNet ids, sorted",
)
LEMMA_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
N_CLASSES = 1000
_WNID = re.compile(r"^n\d{8}$")


def _wheel_file(wheel_dir: str | Path) -> Path:
    path = IMAGENET_CLASSES_WHEEL.wheel_path(Path(wheel_dir))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} absent: the ImageNet class list comes from the pinned "
            f"{IMAGENET_CLASSES_WHEEL.requirement} wheel; run `make setup`"
        )
    verify_wheel(IMAGENET_CLASSES_WHEEL, path)
    return path


def imagenet_wnids(wheel_dir: str | Path = DEFAULT_WHEEL_DIR) -> list[str]:
    """The 1,000 WordNet ids, index i naming logit i; checked to be 1,000 distinct, sorted ids."""
    path = _wheel_file(wheel_dir)
    with zipfile.ZipFile(path) as archive:
        wnids = archive.read(IMAGENET_CLASSES_WHEEL.member).decode("ascii").split()
    origin = f"{path}:{IMAGENET_CLASSES_WHEEL.member}"
    if len(wnids) != N_CLASSES or len(set(wnids)) != N_CLASSES:
        raise ValueError(f"{origin}: {len(set(wnids))} distinct ids, expected {N_CLASSES}")
    bad = [wnid for wnid in wnids if not _WNID.match(wnid)]
    if bad or wnids != sorted(wnids):
        raise ValueError(f"{origin}: not sorted WordNet ids (e.g. {bad[:3] or wnids[:3]})")
    return wnids


def imagenet_class_names(wheel_dir: str | Path = DEFAULT_WHEEL_DIR) -> list[str]:
    """The English name of each of the 1,000 classes (its WordNet lemmas), in logit order."""
    wnids = imagenet_wnids(wheel_dir)
    with zipfile.ZipFile(_wheel_file(wheel_dir)) as archive:
        lines = archive.read(LEMMA_MEMBER).decode("utf-8").splitlines()
    lemmas = dict(line.split("\t", 1) for line in lines if "\t" in line)
    missing = [wnid for wnid in wnids if wnid not in lemmas]
    if missing:
        raise ValueError(f"{LEMMA_MEMBER}: no name for {missing[:3]}")
    return [lemmas[wnid] for wnid in wnids]
