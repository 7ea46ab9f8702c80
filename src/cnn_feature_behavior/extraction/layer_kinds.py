"""The two kinds of layer a source model's features come from, as Figures 6 and 8 split them.

- ``spatial``: feature maps averaged over space inside the model (VGG's conv layers, a ResNet's
  block outputs, an EfficientNet's stage outputs).
- ``head``: 1-D layers taken as they are (VGG's fc6 and fc7, a pooled top, the logits).

The paper calls them convolutional and fully connected; the names here hold for any CNN.
Manifests written before this vocabulary said ``conv`` and ``fc``: read them through
:func:`normalise_layer_kind`.
"""

from __future__ import annotations

SPATIAL = "spatial"
HEAD = "head"
LAYER_KINDS = (SPATIAL, HEAD)
LAYER_KIND_LABELS = {SPATIAL: "spatial layers", HEAD: "head layers"}

_EARLIER_NAMES = {"conv": SPATIAL, "fc": HEAD}


def normalise_layer_kind(kind: str) -> str:
    """``spatial`` or ``head`` for a manifest's ``layer_kind`` (``conv`` / ``fc`` accepted)."""
    kind = _EARLIER_NAMES.get(str(kind), str(kind))
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}: expected one of {LAYER_KINDS}")
    return kind
