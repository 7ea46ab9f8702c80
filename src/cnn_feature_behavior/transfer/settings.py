"""Every `transfer` parameter (conf/base/parameters_transfer.yml), parsed and checked in one place.

Each YAML block is a frozen dataclass with the block's keys as its fields, so that a setting
reads as it is written: `transfer.logistic_regression.budget` is
`settings.logistic_regression.budget`, `transfer.c_selection.widen` is
`settings.c_selection.widen`. The `dks` and `calibration` blocks' keys that the evaluation reads
(its own DKS rankings and t+ / t-) are mirrored the same way. Absent keys take the defaults
below; an unknown key or a bad value is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any

from cnn_feature_behavior.transfer.embeddings import FNE_NEGATIVE, FNE_POSITIVE
from cnn_feature_behavior.transfer.features import BASELINES, RANKINGS

# The values of `transfer.classifier`: `auto` picks the logistic regression where it is
# affordable and the large-scale path (the discriminant) elsewhere (classifier.solver_for); the
# others force one.
RIDGE, LOGISTIC, AUTO, LINEAR_SVC, DISCRIMINANT = (
    "ridge",
    "logistic_regression",
    "auto",
    "linear_svc",
    "discriminant",
)
CLASSIFIERS = (AUTO, DISCRIMINANT, RIDGE, LOGISTIC, LINEAR_SVC)
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LOGISTIC_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
DEFAULT_RIDGE_C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_SHRINKAGE_GRID = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.4, 0.7, 1.0)
# `transfer.maps.embeddings: default`: the embedding's middle and last spatial layers, the full
# network and the FNE (maps.default_embeddings; VGG16: conv3_3, conv5_3, full_network, fne).
DEFAULT_MAP_EMBEDDINGS = "default"


def _block(cls, name: str, values: Mapping[str, Any] | None, **extra):
    """`cls` from one parameters block; keys that are not its fields are errors."""
    if values is not None and not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a mapping, got {values!r}")
    values = dict(values or {})
    known = {f.name for f in fields(cls)} - set(extra)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**values, **extra)


def c_grid(values: Sequence[float]) -> tuple[float, ...]:
    """A C grid as sorted floats, duplicates removed."""
    return tuple(sorted({float(v) for v in values}))


def _check_grid(name: str, grid: tuple[float, ...]) -> None:
    if not grid or any(not float(c) > 0 for c in grid):
        raise ValueError(f"transfer.{name}.c_grid must be C > 0, got {grid}")


def _is_int(value: Any, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, Integral) and value >= low


@dataclass(frozen=True)
class SplitSettings:
    """`transfer.split`: the train / test splits (splits.py)."""

    use_official: bool = True
    train_per_class: int | None = None
    train_fraction: float = 0.5
    repetitions: int = 3
    seed: int = 2018

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(
                f"transfer.split.{name} must be {expected}, got {getattr(self, name)!r}"
            )

        if not isinstance(self.use_official, bool):
            raise bad("use_official", "true or false")
        per_class = self.train_per_class
        if per_class is not None and not _is_int(per_class, 1):
            raise bad("train_per_class", "an integer of at least 1, or null")
        fraction = self.train_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction < 1:
            raise bad("train_fraction", "a number between 0 and 1 (exclusive)")
        for name, low in (("repetitions", 1), ("seed", 0)):
            if not _is_int(getattr(self, name), low):
                raise bad(name, f"an integer of at least {low}")
        object.__setattr__(self, "train_fraction", float(fraction))
        if per_class is not None:
            object.__setattr__(self, "train_per_class", int(per_class))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SplitSettings:
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(f"transfer.split must be a mapping, got {params!r}")
        known = sorted(f.name for f in fields(cls))
        unknown = sorted(set(params or {}) - set(known))
        if unknown:
            raise ValueError(f"transfer.split has unknown keys {unknown}; known: {known}")
        return cls(**dict(params or {}))


@dataclass(frozen=True)
class CSelectionSettings:
    """`transfer.c_selection`: C by stratified k-fold cross-validation on the training split
    (`folds` folds drawn with their own `seed` and the repetition, `repeats` times with
    different draws: the criterion averages over every fold of every draw); the grid extends
    tenfold past an edge up to `widen` times."""

    folds: int = 3
    seed: int = 2018
    widen: int = 3
    repeats: int = 1

    def __post_init__(self) -> None:
        if not _is_int(self.widen, 0):
            raise ValueError(
                f"transfer.c_selection.widen must be an integer >= 0, got {self.widen!r}"
            )
        if not _is_int(self.folds, 2):
            raise ValueError(
                f"transfer.c_selection.folds must be an integer >= 2, got {self.folds!r}"
            )
        if not _is_int(self.seed, 0):
            raise ValueError(
                f"transfer.c_selection.seed must be an integer >= 0, got {self.seed!r}"
            )
        if not _is_int(self.repeats, 1):
            raise ValueError(
                f"transfer.c_selection.repeats must be an integer >= 1, got {self.repeats!r}"
            )


@dataclass(frozen=True)
class RidgeSettings:
    """`transfer.ridge`: closed-form ridge regression on one-hot targets (alpha = 1 / C)."""

    c_grid: tuple[float, ...] = DEFAULT_RIDGE_C_GRID

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_grid", c_grid(self.c_grid))
        _check_grid("ridge", self.c_grid)


@dataclass(frozen=True)
class DiscriminantSettings:
    """`transfer.discriminant`: regularised (shrinkage) LDA (discriminant.py), its shrinkage
    chosen from `shrinkage_grid` (each in (0, 1]); on continuous rows of at most
    `root_raw_max_features` features the folds also score the square roots and the raw values
    side by side (0: never). Rows of at least `walk_min_features` features (and no side by
    side values) walk the grid from their curve's previous size's choice instead of scoring
    every value (classifier.walk_shrinkage; each value costs one factorisation per fold)."""

    shrinkage_grid: tuple[float, ...] = DEFAULT_SHRINKAGE_GRID
    root_raw_max_features: int = 1024
    walk_min_features: int = 2048

    def __post_init__(self) -> None:
        grid = c_grid(self.shrinkage_grid)
        if not grid or any(not 0.0 < value <= 1.0 for value in grid):
            raise ValueError(
                f"transfer.discriminant.shrinkage_grid must be values in (0, 1], got {grid}"
            )
        object.__setattr__(self, "shrinkage_grid", grid)
        if not _is_int(self.root_raw_max_features, 0):
            raise ValueError(
                "transfer.discriminant.root_raw_max_features must be an integer >= 0, got "
                f"{self.root_raw_max_features!r}"
            )
        if not _is_int(self.walk_min_features, 1):
            raise ValueError(
                "transfer.discriminant.walk_min_features must be an integer >= 1, got "
                f"{self.walk_min_features!r}"
            )


@dataclass(frozen=True)
class LogisticRegressionSettings:
    """`transfer.logistic_regression`: the multinomial logistic regression (multinomial.py)."""

    c_grid: tuple[float, ...] = DEFAULT_LOGISTIC_C_GRID
    max_iter: int = 3000
    tol: float = 1e-6
    # The folds' fits that choose C also stop once their weights are within this share of
    # the optimum's (as `relative_tol`, the refit's): a stop that tightens with C, where an
    # absolute tolerance left the large C values' fits where their warm start put them.
    selection_relative_tol: float = 0.05
    # The refit also stops once its weights are within this share of the optimum's (2-norm;
    # multinomial.MultinomialLoss.close_enough); 0: at `tol` only.
    relative_tol: float = 0.01
    row_space: bool = True
    # Training images^2 x features x classes up to which auto fits a logistic
    # regression (features: the images where the row space is used).
    budget: float = 1e12

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_grid", c_grid(self.c_grid))
        object.__setattr__(self, "budget", float(self.budget))
        _check_grid("logistic_regression", self.c_grid)
        # tol 0 would never stop; the relative stops are shares of the weights' norm (0: off).
        for name, zero_allowed in (
            ("tol", False),
            ("relative_tol", True),
            ("selection_relative_tol", True),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                inside = False
            else:
                inside = (0.0 <= value if zero_allowed else 0.0 < value) and value < 1.0
            if not inside:
                interval = "[0, 1)" if zero_allowed else "(0, 1)"
                raise ValueError(
                    f"transfer.logistic_regression.{name} must be a number in {interval}, "
                    f"got {value!r}"
                )


@dataclass(frozen=True)
class LinearSvcSettings:
    """`transfer.linear_svc`: LinearSVC with a fixed C (the FNE's public code)."""

    C: float = 1.0  # the YAML key: scikit-learn's name
    max_iter: int = 1000


@dataclass(frozen=True)
class FneSettings:
    """`transfer.fne`: standardised values above `positive` become 1, below `negative` -1."""

    positive: float = FNE_POSITIVE
    negative: float = FNE_NEGATIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", float(self.positive))
        object.__setattr__(self, "negative", float(self.negative))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> FneSettings:
        return _block(cls, "transfer.fne", params)


@dataclass(frozen=True)
class MapSettings:
    """`transfer.maps`: the 2-D maps (maps.py); `fne` is `transfer.fne`, for the FNE's map."""

    embeddings: tuple[str, ...] | str = DEFAULT_MAP_EMBEDDINGS
    max_images: int = 2000
    pca_components: int = 50
    perplexity: float = 30.0
    max_iter: int = 1000
    seed: int = 2018
    threads: int | None = None
    fne: FneSettings = field(default_factory=FneSettings)

    def __post_init__(self) -> None:
        if isinstance(self.embeddings, str):
            if self.embeddings != DEFAULT_MAP_EMBEDDINGS:
                raise ValueError(
                    "transfer.maps.embeddings: a list of names or "
                    f"`{DEFAULT_MAP_EMBEDDINGS}`, got {self.embeddings!r}"
                )
        else:
            object.__setattr__(self, "embeddings", tuple(self.embeddings))
        if not self.embeddings:
            raise ValueError("transfer.maps.embeddings: name at least one embedding")
        if self.max_images < 2:
            raise ValueError(f"transfer.maps.max_images must be at least 2, got {self.max_images}")
        if self.pca_components < 2:
            raise ValueError(
                f"transfer.maps.pca_components must be at least 2, got {self.pca_components}"
            )
        if self.perplexity <= 0:
            raise ValueError(f"transfer.maps.perplexity must be > 0, got {self.perplexity}")

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | None, fne: FneSettings | None = None
    ) -> MapSettings:
        """Settings from the `transfer.maps` block and the FNE's thresholds."""
        return _block(cls, "transfer.maps", params, fne=fne or FneSettings())


@dataclass(frozen=True)
class ComparisonSettings:
    """`transfer.comparisons`: the intervals of transfer_comparisons (comparisons.py), a
    percentile bootstrap of `resamples` seeded replicates at confidence `level`."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = 2018

    def __post_init__(self) -> None:
        if not _is_int(self.resamples, 100):
            raise ValueError(
                f"transfer.comparisons.resamples must be an integer >= 100, got {self.resamples!r}"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"transfer.comparisons.level must lie in (0, 1), got {self.level!r}")


@dataclass(frozen=True)
class DksInputs:
    """The `dks` block's keys that the evaluation's own DKS rankings use."""

    bins: int | None = 100
    workers: int | None = None


@dataclass(frozen=True)
class CalibrationInputs:
    """The `calibration` block's keys that the evaluation's own t+ / t- use."""

    repetitions: int = 1
    seed: int = 2018


@dataclass(frozen=True)
class TransferSettings:
    """The `transfer` parameters, block by block, with the dks and calibration keys it reads."""

    split: SplitSettings = field(default_factory=SplitSettings)
    classifier: str = AUTO
    c_selection: CSelectionSettings = field(default_factory=CSelectionSettings)
    ridge: RidgeSettings = field(default_factory=RidgeSettings)
    discriminant: DiscriminantSettings = field(default_factory=DiscriminantSettings)
    logistic_regression: LogisticRegressionSettings = field(
        default_factory=LogisticRegressionSettings
    )
    linear_svc: LinearSvcSettings = field(default_factory=LinearSvcSettings)
    fne: FneSettings = field(default_factory=FneSettings)
    rankings: tuple[str, ...] = RANKINGS
    baselines: tuple[str, ...] = BASELINES
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    random_draws: int = 10
    seed: int = 2018
    workers: int | None = None
    comparisons: ComparisonSettings = field(default_factory=ComparisonSettings)
    maps: MapSettings = field(default_factory=MapSettings)
    dks: DksInputs = field(default_factory=DksInputs)
    calibration: CalibrationInputs = field(default_factory=CalibrationInputs)

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"transfer.classifier must be one of {CLASSIFIERS}, got {self.classifier!r}"
            )
        rankings = tuple(self.rankings)
        if not rankings or set(rankings) - set(RANKINGS) or len(set(rankings)) < len(rankings):
            raise ValueError(
                f"transfer.rankings must be distinct names among {RANKINGS}, got {list(rankings)}"
            )
        object.__setattr__(self, "rankings", rankings)
        baselines = tuple(self.baselines)
        if set(baselines) - set(BASELINES) or len(set(baselines)) < len(baselines):
            raise ValueError(
                f"transfer.baselines must be distinct names among {BASELINES}, got "
                f"{list(baselines)}"
            )
        object.__setattr__(self, "baselines", baselines)
        if not _is_int(self.random_draws, 1):
            raise ValueError(
                f"transfer.random_draws must be an integer >= 1, got {self.random_draws!r}"
            )
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if self.workers is not None and (int(self.workers) != self.workers or self.workers < 1):
            raise ValueError(
                f"transfer.workers must be an integer >= 1 or null, got {self.workers!r}"
            )

    @classmethod
    def from_params(
        cls,
        transfer: Mapping[str, Any],
        dks: Mapping[str, Any] | None = None,
        calibration: Mapping[str, Any] | None = None,
    ) -> TransferSettings:
        """Settings from the parameters blocks; unknown `transfer` keys are errors."""
        transfer = dict(transfer)
        known = {f.name for f in fields(cls)} - {"dks", "calibration"}
        unknown = sorted(set(transfer) - known)
        if unknown:
            raise ValueError(f"transfer: unknown key(s) {unknown}; known: {sorted(known)}")
        fne = FneSettings.from_params(transfer.get("fne"))
        blocks = {
            "split": SplitSettings.from_params(transfer.get("split")),
            "fne": fne,
            "maps": MapSettings.from_params(transfer.get("maps"), fne),
        }
        for name, block_class in (
            ("c_selection", CSelectionSettings),
            ("ridge", RidgeSettings),
            ("discriminant", DiscriminantSettings),
            ("logistic_regression", LogisticRegressionSettings),
            ("linear_svc", LinearSvcSettings),
            ("comparisons", ComparisonSettings),
        ):
            blocks[name] = _block(block_class, f"transfer.{name}", transfer.get(name))
        scalars = {k: v for k, v in transfer.items() if k not in blocks}
        dks, calibration = dict(dks or {}), dict(calibration or {})
        return cls(
            **blocks,
            **scalars,
            dks=DksInputs(bins=dks.get("bins", 100), workers=dks.get("workers")),
            calibration=CalibrationInputs(
                repetitions=int(calibration.get("repetitions", 1)),
                seed=int(calibration.get("seed", 2018)),
            ),
        )
