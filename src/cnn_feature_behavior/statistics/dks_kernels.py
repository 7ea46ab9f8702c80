"""Compiled kernels of the DKS and histogram statistics (numba, one implementation per mode).

Each kernel works on a contiguous (features, images) float32 block and releases the GIL, so the
thread pool of `dks.map_feature_blocks` (or a Dask worker's threads) runs blocks in parallel.
Several labellings (the real labels and the randomised repetitions) are served from one pass
over the block: the binning (binned mode) or the value order (exact mode) of a feature does not
depend on the labels, so it is computed once per feature (a counting sort by bin, or a radix sort
of the values), then one O(images + classes) sweep per labelling gives the integer scores
n * T - N * I whose extremes are the statistic (see dks.py for the definitions and the tie rule).

`cache=True` keeps the compiled code next to this file (__pycache__), so only the first call on a
machine pays the compile time (a few seconds per kernel).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SIGN_BIT = np.uint32(0x80000000)
_ALL_BITS = np.uint32(0xFFFFFFFF)
_RADIX_BITS = 11  # 3 passes over 32-bit keys; 2048 counters stay in L1
_RADIX = 1 << _RADIX_BITS


@njit(nogil=True, cache=True)
def _signed(score_max, score_min, denominator):
    # Ties of +max and -max take the negative side, as scipy.stats.ks_2samp does.
    if score_max > -score_min:
        return score_max / denominator
    return score_min / denominator


@njit(nogil=True, cache=True)
def _bin_row(row, lo, hi, bins, index):
    """Bin of every value of one feature: floor((x - lo) * (bins / (hi - lo))) in float64."""
    span = hi - lo
    scale = bins / span if span > 0 else 0.0
    last = bins - 1
    for i in range(row.size):
        b = int((np.float64(row[i]) - lo) * scale)
        index[i] = b if b < last else last


@njit(nogil=True, cache=True)
def _sweep(order, group_starts, n_groups, labels, sizes, sorted_labels, count, high, low, out):
    """DKS of every class for one labelling, from the images in value order and its groups.

    order: images by value; group_starts[g]..group_starts[g + 1]: the g-th group of equal values
    (equal bins in binned mode). Keeps the running count I_c of each class: just below a group
    holding class c, n_c * T - N * I_c is a candidate for the maximum (T, I count values < x),
    just at it a candidate for the minimum (T, I count values <= x); the extremes of
    outer_EDF - inner_EDF can only be reached there.
    """
    n_images = order.size
    for i in range(n_images):
        sorted_labels[i] = labels[order[i]]
    count[:] = 0
    # Every class scores >= 0 just below its first group and <= 0 at its last one.
    high[:] = 0
    low[:] = 0
    for g in range(n_groups):
        start = group_starts[g]
        stop = group_starts[g + 1]
        if stop - start == 1:
            c = sorted_labels[start]
            n = sizes[c]
            below = n * start - n_images * count[c]
            # max / min, not branches: whether a score is a new extreme is unpredictable.
            high[c] = max(high[c], below)
            count[c] += 1
            low[c] = min(low[c], below + n - n_images)
            continue
        # A tied group: scores below it, counting as we go (a class's later duplicates score
        # lower, so its first one sets the maximum), then every score at it (duplicates agree).
        for i in range(start, stop):
            c = sorted_labels[i]
            high[c] = max(high[c], sizes[c] * start - n_images * count[c])
            count[c] += 1
        for i in range(start, stop):
            c = sorted_labels[i]
            low[c] = min(low[c], sizes[c] * stop - n_images * count[c])
    for c in range(sizes.size):
        n = sizes[c]
        out[c] = _signed(high[c], low[c], n * (n_images - n))


@njit(nogil=True, cache=True)
def binned_block(block_t, lo, hi, label_sets, sizes, bins, out):
    """Binned DKS of a block for every labelling: out[l, f, c] (float64, filled in place).

    block_t: (features, images) float32; lo, hi: each row's range (float64); label_sets:
    (labellings, images) int32 with the class sizes `sizes` (int64) in each labelling. A counting
    sort by bin gives the groups; the sweep is the exact statistic of the bin indices.
    """
    n_labellings, n_images = label_sets.shape
    n_classes = sizes.size
    index = np.empty(n_images, np.int32)
    order = np.empty(n_images, np.int32)
    position = np.empty(bins + 1, np.int64)
    group_starts = np.empty(bins + 1, np.int64)
    sorted_labels = np.empty(n_images, np.int32)
    count = np.empty(n_classes, np.int64)
    high = np.empty(n_classes, np.int64)
    low = np.empty(n_classes, np.int64)
    for f in range(block_t.shape[0]):
        _bin_row(block_t[f], lo[f], hi[f], bins, index)
        position[:] = 0
        for i in range(n_images):
            position[index[i] + 1] += 1
        n_groups = 0
        for b in range(bins):
            if position[b + 1] > 0:
                group_starts[n_groups] = position[b]
                n_groups += 1
            position[b + 1] += position[b]
        group_starts[n_groups] = n_images
        for i in range(n_images):
            b = index[i]
            order[position[b]] = i
            position[b] += 1
        for labelling in range(n_labellings):
            _sweep(
                order,
                group_starts,
                n_groups,
                label_sets[labelling],
                sizes,
                sorted_labels,
                count,
                high,
                low,
                out[labelling, f],
            )


@njit(nogil=True, cache=True)
def _sort_keys(row, keys, order, scratch_keys, scratch_order, counts):
    """Sort one feature's values: keys (order-preserving uint32 of the float32) and image order.

    LSD radix sort, 11 bits per pass (stable); a pass where every key shares the digit is skipped.
    -0.0 is mapped to +0.0 first, so equal values always get equal keys. counts: (3, 2048) int64.
    """
    bits = row.view(np.uint32)
    n = row.size
    mask = np.uint32(_RADIX - 1)
    counts[:, :] = 0
    for i in range(n):
        u = bits[i]
        if u == _SIGN_BIT:
            u = np.uint32(0)
        # Negative floats: all bits flipped; positive: sign bit set. Unsigned order = value order.
        key = (u ^ _ALL_BITS) if (u & _SIGN_BIT) else (u | _SIGN_BIT)
        keys[i] = key
        order[i] = i
        counts[0, key & mask] += 1
        counts[1, (key >> np.uint32(_RADIX_BITS)) & mask] += 1
        counts[2, key >> np.uint32(2 * _RADIX_BITS)] += 1
    source_keys, source_order = keys, order
    target_keys, target_order = scratch_keys, scratch_order
    swapped = False
    for digit in range(3):
        shift = np.uint32(digit * _RADIX_BITS)
        if n == 0 or counts[digit, (source_keys[0] >> shift) & mask] == n:
            continue
        position = 0
        for d in range(_RADIX):
            c = counts[digit, d]
            counts[digit, d] = position
            position += c
        for i in range(n):
            key = source_keys[i]
            d = (key >> shift) & mask
            target = counts[digit, d]
            target_keys[target] = key
            target_order[target] = source_order[i]
            counts[digit, d] = target + 1
        source_keys, target_keys = target_keys, source_keys
        source_order, target_order = target_order, source_order
        swapped = not swapped
    if swapped:
        keys[:] = source_keys
        order[:] = source_order


@njit(nogil=True, cache=True)
def exact_block(block_t, label_sets, sizes, out):
    """Exact DKS of a block for every labelling: out[l, f, c] (float64, filled in place).

    Per feature, one sort gives the groups of equal values, then one sweep per labelling.
    """
    n_labellings, n_images = label_sets.shape
    n_classes = sizes.size
    keys = np.empty(n_images, np.uint32)
    order = np.empty(n_images, np.int32)
    scratch_keys = np.empty(n_images, np.uint32)
    scratch_order = np.empty(n_images, np.int32)
    counts = np.empty((3, _RADIX), np.int64)
    group_starts = np.empty(n_images + 1, np.int64)
    sorted_labels = np.empty(n_images, np.int32)
    count = np.empty(n_classes, np.int64)
    high = np.empty(n_classes, np.int64)
    low = np.empty(n_classes, np.int64)
    for f in range(block_t.shape[0]):
        _sort_keys(block_t[f], keys, order, scratch_keys, scratch_order, counts)
        n_groups = 0
        for i in range(n_images):
            if i == 0 or keys[i] != keys[i - 1]:
                group_starts[n_groups] = i
                n_groups += 1
        group_starts[n_groups] = n_images
        for labelling in range(n_labellings):
            _sweep(
                order,
                group_starts,
                n_groups,
                label_sets[labelling],
                sizes,
                sorted_labels,
                count,
                high,
                low,
                out[labelling, f],
            )


@njit(nogil=True, cache=True)
def histogram_distance_block(block_t, lo, hi, labels, sizes, bins, smoothing, kl_out, bh_out):
    """KL(inner || outer) and Bhattacharyya distance of a block (see histogram_distances.py)."""
    n_images = labels.size
    n_classes = sizes.size
    index = np.empty(n_images, np.int32)
    total = np.empty(bins, np.int64)
    histogram = np.zeros((n_classes, bins), np.int64)
    renorm = 1.0 / (1.0 + bins * smoothing)
    for f in range(block_t.shape[0]):
        _bin_row(block_t[f], lo[f], hi[f], bins, index)
        total[:] = 0
        for i in range(n_images):
            total[index[i]] += 1
            histogram[labels[i], index[i]] += 1
        for c in range(n_classes):
            inner_size = np.float64(sizes[c])
            outer_size = np.float64(n_images - sizes[c])
            kl = 0.0
            coefficient = 0.0
            for b in range(bins):
                inner = histogram[c, b]
                histogram[c, b] = 0
                # Divisions, not reciprocal products: equal fractions give identical probabilities.
                p = (inner / inner_size + smoothing) * renorm
                q = ((total[b] - inner) / outer_size + smoothing) * renorm
                # One logarithm per bin (the kernel's main cost); p == q still gives exactly 0.
                kl += p * np.log(p / q)
                coefficient += np.sqrt(p * q)
            # Both are >= 0; rounding could otherwise leave values like -1e-17.
            kl_out[f, c] = max(kl, 0.0)
            bh_out[f, c] = max(-np.log(coefficient), 0.0)
