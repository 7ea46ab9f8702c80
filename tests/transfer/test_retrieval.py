"""Retrieval mAP@k and the blocked top-k search, against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_feature_behavior.transfer.nearest import Cosines, leave_one_out, most_similar
from cnn_feature_behavior.transfer.retrieval import (
    RetrievalSettings,
    average_precision_at_k,
    retrieval_scores,
)


def float64_cosines(values: np.ndarray) -> np.ndarray:
    """Every pair's cosine, pair by pair in float64 (0 where a vector is all zeros)."""
    n = len(values)
    v = values.astype(np.float64)
    norms = [float(np.sqrt(np.dot(row, row))) for row in v]
    out = np.zeros((n, n))
    for q in range(n):
        for j in range(n):
            denominator = norms[q] * norms[j]
            out[q, j] = np.dot(v[q], v[j]) / denominator if denominator > 0 else 0.0
    return out


def float32_cosines(values: np.ndarray) -> np.ndarray:
    """The float64 cosines rounded to float32, where the tie rule applies: three-valued vectors
    have exact ties of the real cosine (1 / sqrt(2 x 2) and 2 / sqrt(4 x 4))."""
    return float64_cosines(values).astype(np.float32)


def brute_force_neighbours(values: np.ndarray, k: int, cosines=float64_cosines) -> list[list[int]]:
    """For each image, the k others of highest cosine, ties to the earlier image: a plain loop."""
    similarity = cosines(values)
    ranked = []
    for q in range(len(values)):
        scored = sorted((-float(similarity[q, j]), j) for j in range(len(values)) if j != q)
        ranked.append([j for _, j in scored[:k]])
    return ranked


def brute_force_map(
    values: np.ndarray, labels: np.ndarray, k: int, cosines=float64_cosines
) -> float:
    """mAP@k by the definition: for each query with R > 0 relevant others,
    sum over the first k of P(i) rel_i, divided by min(k, R)."""
    aps = []
    for q, neighbours in enumerate(brute_force_neighbours(values, k, cosines)):
        relevant_total = int(np.sum(labels == labels[q])) - 1
        if relevant_total == 0:
            continue
        hits, total = 0, 0.0
        for i, j in enumerate(neighbours, start=1):
            if labels[j] == labels[q]:
                hits += 1
                total += hits / i
        aps.append(total / min(k, relevant_total))
    return float(np.mean(aps))


def clustered(n_per_class: int, n_classes: int, n_features: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, n_features))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    values = centres[labels] + rng.normal(scale=1.5, size=(len(labels), n_features))
    return values.astype(np.float32), labels


@pytest.mark.parametrize("block", [7, 64, 2048])
def test_leave_one_out_neighbours_equal_a_brute_force_loop(block):
    values, _ = clustered(30, 5, 12, seed=1)
    indices, similarities = leave_one_out(Cosines.of(values), k=6, workers=2, block=block)
    assert indices.tolist() == brute_force_neighbours(values, 6)
    assert np.all(np.diff(similarities, axis=1) <= 0)


def test_ties_rank_the_earlier_image_first_and_a_zero_row_is_dissimilar():
    # Integer vectors: equal cosines are equal in float32 too.
    values = np.array(
        [[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0], [1, 0, 0]], np.float32
    )
    indices, similarities = leave_one_out(Cosines.of(values), k=4, workers=2, block=2)
    assert indices[0].tolist() == [2, 3, 6, 5]
    assert indices[6].tolist() == [0, 2, 3, 5]
    assert indices.tolist() == brute_force_neighbours(values, 4)
    assert similarities[4].tolist() == [0, 0, 0, 0]  # the zero row: cosine 0 with everything


def test_fewer_images_than_k_leave_empty_places():
    indices, similarities = leave_one_out(Cosines.of(np.eye(3) * 0.5), k=5)
    assert (indices[:, 2:] == -1).all() and np.isneginf(similarities[:, 2:]).all()


def test_most_similar_equals_a_full_sort():
    values, _ = clustered(20, 4, 8, seed=2)
    queries = np.random.default_rng(3).normal(size=(9, 8)).astype(np.float32)
    indices, similarities = most_similar(Cosines.of(queries), Cosines.of(values), 5, block=16)
    full = float64_cosines(np.vstack([queries, values]))[: len(queries), len(queries) :]
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    assert indices.tolist() == expected.tolist()
    np.testing.assert_allclose(similarities, np.take_along_axis(full, expected, 1), atol=1e-6)


def test_average_precision_by_hand():
    # Relevant at ranks 1 and 3 of k = 4, with 5 relevant in all: (1/1 + 2/3) / min(4, 5).
    relevant = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    ap = average_precision_at_k(relevant, np.array([5, 1, 2, 0]))
    np.testing.assert_allclose(ap[:3], [(1 + 2 / 3) / 4, (1 / 4) / 1, (1 + 1) / 2])
    assert np.isnan(ap[3])  # no relevant image: no AP


def test_retrieval_scores_equal_a_brute_force_map_on_standardised_features():
    values, labels = clustered(12, 4, 10, seed=4)
    values[:, :4] *= 50.0  # standardisation must matter
    values[:, 4:] += 7.0
    layers = ["a"] * 4 + ["b"] * 6
    # A class of one image has no relevant image: counted among the images, not the queries.
    values = np.vstack([values, values[:1] + 1.0])
    labels = np.append(labels, 9)
    table = retrieval_scores(values, labels, layers, RetrievalSettings(k=5, block=8))
    assert table["embedding"].tolist() == ["layer", "layer", "full_network", "fne"]

    standardised = (values - values.mean(0)) / values.std(0)
    fne = np.where(standardised > 0.15, 1.0, np.where(standardised < -0.25, -1.0, 0.0))
    expected = [
        brute_force_map(standardised[:, :4], labels, 5),
        brute_force_map(standardised[:, 4:], labels, 5),
        brute_force_map(standardised, labels, 5),
        brute_force_map(fne, labels, 5, float32_cosines),
    ]
    np.testing.assert_allclose(table["map_at_k"], expected, rtol=1e-12)
    assert (table["n_images"] == 49).all() and (table["n_queries"] == 48).all()
    assert (table["ci_low"] < table["map_at_k"]).all() and (
        table["map_at_k"] < table["ci_high"]
    ).all()
    best = table["map_at_k"].idxmax()
    assert table.loc[best, "tied_with_best"]


def test_a_clearly_worse_embedding_is_not_tied_with_the_best():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(5), 40)
    signal = np.eye(5)[labels] * 5 + rng.normal(size=(200, 5))
    noise = rng.normal(size=(200, 5))
    table = retrieval_scores(
        np.hstack([signal, noise]).astype(np.float32),
        labels,
        ["good"] * 5 + ["noise"] * 5,
        RetrievalSettings(k=10),
    )
    by_layer = table.set_index(table["layer"].fillna(table["embedding"]))
    assert by_layer.loc["good", "map_at_k"] > 0.9 and by_layer.loc["noise", "map_at_k"] < 0.4
    assert by_layer.loc["good", "tied_with_best"] and not by_layer.loc["noise", "tied_with_best"]


def test_settings_reject_unknown_keys_and_bad_k():
    with pytest.raises(ValueError, match="unknown key"):
        RetrievalSettings.from_params({"kk": 3})
    with pytest.raises(ValueError, match="retrieval.k"):
        RetrievalSettings.from_params({"k": 0})
    assert isinstance(RetrievalSettings.from_params({}), RetrievalSettings)
