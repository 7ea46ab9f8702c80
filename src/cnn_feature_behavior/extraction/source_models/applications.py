"""keras.applications architectures as source models: their weights files, input sizes,
preprocessing and default feature layers.

A source model's `architecture` may be any `keras.applications` class name (`ResNet50`,
`DenseNet121`, `MobileNetV2`, `EfficientNetB0`, `ConvNeXtTiny`, `InceptionV3`, ...). The families
of `FAMILIES` come with their input size, their own `preprocess_input`, Keras' own ImageNet file
names (with and without the classifier) and a default layer rule; any other class needs
`input_size`, `preprocessing` and `layers` in its config entry.

Default feature layers, by the model's own layer names (docs/source_models.md lists the counts):
- the output of every block (ResNet, MobileNetV2, EfficientNet, ConvNeXt, Inception's `mixed<n>`)
  or dense block (DenseNet), in model order;
- then the final feature map the pooled top averages, where it is a layer of its own
  (MobileNetV2's `out_relu`, EfficientNet's `top_activation`, DenseNet's `relu`);
- then, where the weights have the classifier, the head: the pooled top (the first of the
  trailing 1-D layers) and the logits (the last layer; built with `classifier_activation=None`, so before softmax).

ConvNeXt closes each block with a residual sum that is an operation, not a Keras layer: its
output is named after the block, `convnext_tiny_stage_<s>_block_<b>` (see `taps.layer_output`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class BlockRule:
    """Which layers end a block: the last layer (model order) matching `pattern` per value of its
    first group. `named_by_block`: the feature layer is named by that group (ConvNeXt)."""

    pattern: str
    final: tuple[str, ...] = ()
    named_by_block: bool = False


@dataclass(frozen=True)
class Family:
    """One keras.applications architecture's settings."""

    architecture: str  # the keras.applications class name
    input_size: int
    preprocessing: str  # the keras.applications module whose preprocess_input it uses
    keras_file: str  # Keras' own ImageNet weights file, with the classifier
    keras_file_notop: str
    rule: BlockRule


_RESNET = BlockRule(r"^(conv\d_block\d+)_out$")
_DENSENET = BlockRule(r"^(conv\d)_block\d+_concat$", final=("relu",))
_MOBILENET_V2 = BlockRule(r"^(expanded_conv|block_\d+)_(?:project_BN|add)$", final=("out_relu",))
_EFFICIENTNET = BlockRule(r"^(block\d[a-z])_(?:project_bn|add)$", final=("top_activation",))
_INCEPTION_V3 = BlockRule(r"^(mixed\d+)$")


def _keras_h5(stem: str) -> tuple[str, str]:
    return (
        f"{stem}_weights_tf_dim_ordering_tf_kernels.h5",
        f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )


def _families() -> dict[str, Family]:
    families = [
        Family(name, 224, "resnet", *_keras_h5(name.lower()), _RESNET)
        for name in ("ResNet50", "ResNet101", "ResNet152")
    ]
    families += [
        Family(name, 224, "densenet", *_keras_h5(name.lower()), _DENSENET)
        for name in ("DenseNet121", "DenseNet169", "DenseNet201")
    ]
    mobilenet_v2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224"
    families.append(
        Family(
            "MobileNetV2",
            224,
            "mobilenet_v2",
            f"{mobilenet_v2}.h5",
            f"{mobilenet_v2}_no_top.h5",
            _MOBILENET_V2,
        )
    )
    sizes = (224, 240, 260, 300, 380, 456, 528, 600)
    families += [
        Family(
            f"EfficientNetB{n}",
            size,
            "efficientnet",
            f"efficientnetb{n}.h5",
            f"efficientnetb{n}_notop.h5",
            _EFFICIENTNET,
        )
        for n, size in enumerate(sizes)
    ]
    for size in ("Tiny", "Small", "Base", "Large", "XLarge"):
        prefix = f"convnext_{size.lower()}"
        rule = BlockRule(rf"^({prefix}_stage_\d_block_\d+)_identity$", named_by_block=True)
        families.append(
            Family(
                f"ConvNeXt{size}",
                224,
                "convnext",
                f"{prefix}.h5",
                f"{prefix}_notop.h5",
                rule,
            )
        )
    families.append(
        Family(
            "InceptionV3",
            299,
            "inception_v3",
            *_keras_h5("inception_v3"),
            _INCEPTION_V3,
        )
    )
    return {family.architecture: family for family in families}


FAMILIES = _families()
"""keras.applications class name -> its settings."""


def is_application(architecture: str) -> bool:
    """Whether `architecture` names a keras.applications class (a family or any other)."""
    if architecture in FAMILIES:
        return True
    import keras

    return architecture[:1].isupper() and callable(getattr(keras.applications, architecture, None))


def application_settings(source_model_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the family's defaults filled in: input_size, preprocessing, weights.

    Weights default to Keras' own ImageNet files in the Keras cache (with, then without the
    classifier). An architecture outside `FAMILIES` must give them all, and its layers.
    """
    architecture = spec["architecture"]
    family = FAMILIES.get(architecture)
    if family is None:
        missing = [key for key in ("input_size", "preprocessing", "weights") if key not in spec]
        if missing or spec.get("layers", "default") == "default":
            raise ValueError(
                f"source model {source_model_name!r}: keras.applications.{architecture} has no "
                f"default settings here (known families: {', '.join(FAMILIES)}); its config entry "
                f"needs input_size, preprocessing, weights and a list of layers (missing: "
                f"{missing + (['layers'] if spec.get('layers', 'default') == 'default' else [])})"
            )
        return dict(spec)
    defaults = {
        "layers": "default",
        "input_size": family.input_size,
        "preprocessing": family.preprocessing,
        "weights": [
            {"source": "keras", "file_name": family.keras_file},
            {"source": "keras", "file_name": family.keras_file_notop},
        ],
    }
    return {**defaults, **spec}


def build_application(
    architecture: str, *, include_head: bool, input_size: int, seed: int | None = None
) -> keras.Model:
    """keras.applications' network, randomly initialised (never downloaded: `weights=None`).

    With the head, its classifier gives logits (`classifier_activation=None`).
    """
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)
    builder = getattr(keras.applications, architecture)
    options: dict[str, Any] = {
        "weights": None,
        "include_top": include_head,
        "input_shape": (input_size, input_size, 3),
    }
    if include_head:
        options["classifier_activation"] = None
    model = builder(**options)
    _name_the_pooled_top(model)
    return model


_AUTO_POOL_NAME = re.compile(r"^global_average_pooling2d(_\d+)?$")


def _name_the_pooled_top(model: keras.Model) -> None:
    """MobileNetV2 leaves its pooled top unnamed: Keras numbers it by how many such layers this
    process has made (`global_average_pooling2d_3`), so a feature's name would depend on the
    process. It gets the other families' name, `avg_pool`."""
    names = {layer.name for layer in model.layers}
    for layer in model.layers:
        if _AUTO_POOL_NAME.match(layer.name) and "avg_pool" not in names:
            layer.name = "avg_pool"
            return


def load_application(
    source_model_name: str, spec: dict[str, Any], weights_path: Path
) -> keras.Model:
    """The spec's keras.applications network with the weights of `weights_path` (Keras' own file or
    a file of the same layout); with the classifier only where the file has it.

    The network with its classifier is tried first: Keras refuses a file without it there, and
    would silently leave a file's classifier unread in the network without it.
    """
    architecture = spec["architecture"]
    errors = []
    for include_head in (True, False):
        model = build_application(
            architecture, include_head=include_head, input_size=int(spec["input_size"])
        )
        try:
            model.load_weights(weights_path)
        except (ValueError, KeyError) as error:
            errors.append(f"{'with' if include_head else 'without'} its classifier: {error}")
            continue
        return model
    raise ValueError(
        f"source model {source_model_name!r}: {weights_path} does not fit "
        f"keras.applications.{architecture} (input {spec['input_size']}); " + "; ".join(errors)
    )


def default_feature_layers(model: keras.Model, architecture: str) -> list[str]:
    """The family's default feature layers of `model` (module doc), in model order."""
    family = FAMILIES.get(architecture)
    if family is None:
        raise ValueError(
            f"keras.applications.{architecture} has no default layer rule: list its layers"
        )
    rule = family.rule
    pattern = re.compile(rule.pattern)
    last_of_block: dict[str, str] = {}
    for layer in model.layers:
        match = pattern.match(layer.name)
        if match:
            last_of_block[match[1]] = match[1] if rule.named_by_block else layer.name
    names = {layer.name for layer in model.layers}
    missing = [name for name in rule.final if name not in names]
    if not last_of_block or missing:
        raise ValueError(
            f"{model.name}: not the layout of keras.applications.{architecture} (no layer matches "
            f"{rule.pattern!r}, or {missing} absent)"
        )
    return list(last_of_block.values()) + list(rule.final) + head_layers(model)


def head_layers(model: keras.Model) -> list[str]:
    """The pooled top and the logits (the last layer), where the model ends in a classifier; none
    for a network that ends in feature maps.

    The pooled top is the first layer of the model's trailing run of 1-D layers (a 1-D layer
    inside a block, such as a squeeze-excite pooling, is not it).
    """
    trailing = []
    for layer in reversed(model.layers):
        if len(layer.output.shape) != 2:
            break
        trailing.append(layer.name)
    if not trailing:
        return []
    pooled, logits = trailing[-1], trailing[0]
    return [pooled, logits] if pooled != logits else [logits]
