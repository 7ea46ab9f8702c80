"""Figure 5's bars (statistics.dks.side_summary): both interval rules against closed forms.

Large samples of skewed distributions with closed-form quantiles (a shifted exponential, a
negated log-normal; scipy.stats gives the CDF and its inverse) and small cases computed by hand.
The closed forms are evaluated at the mode side_summary returns, so they check the intervals
alone; the mode itself is checked against the bin it must fall in.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cnn_feature_behavior.statistics.dks import side_summary

N = 200_000
ATOL = 2e-3  # a quantile's standard error at N is a few 1e-4 here


def closed_form(rule: str, mode: float, cdf, ppf, kept: np.ndarray) -> tuple[float, float]:
    """(low, high) of a side whose values follow `cdf`, by the rule's definition.

    central_68 clips at the side's extremes, which are the sample's (`kept`), not the law's.
    """
    at_mode = cdf(mode)
    if rule == "side_68":
        # 68% of the mass below the mode lies in [low, mode], 68% of the mass above in [mode, high].
        return ppf(0.32 * at_mode), ppf(at_mode + 0.68 * (1 - at_mode))
    low = ppf(at_mode - 0.34) if at_mode > 0.34 else kept.min()
    high = ppf(at_mode + 0.34) if at_mode < 0.66 else kept.max()
    return low, high


@pytest.fixture(scope="module")
def skewed():
    """D+ ~ 0.06 + Exp(0.08) (mode bin [0.06, 0.08]); D- ~ -LogNormal(-2, 0.4); a few zeros."""
    rng = np.random.default_rng(7)
    positive = stats.expon(loc=0.06, scale=0.08)
    negative = stats.lognorm(s=0.4, scale=np.exp(-2.0))
    values = np.concatenate(
        [
            positive.rvs(N, random_state=rng),
            -negative.rvs(N, random_state=rng),
            np.zeros(50),
        ]
    )
    assert np.abs(values).max() <= 1  # P(|value| > 1) is below 1e-5 for both sides
    return values, positive, negative


@pytest.mark.parametrize("rule", ["side_68", "central_68"])
def test_shifted_exponential_positive_side_matches_the_closed_form(skewed, rule):
    values, positive, _ = skewed
    mode, low, high, n = side_summary(values, "positive", rule)
    assert n == N
    # The density falls from 0.06 on: the fullest bin is [0.06, 0.08].
    assert mode == pytest.approx(0.07)
    want = closed_form(rule, mode, positive.cdf, positive.ppf, values[values > 0])
    np.testing.assert_allclose((low, high), want, atol=ATOL)


@pytest.mark.parametrize("rule", ["side_68", "central_68"])
def test_negated_log_normal_negative_side_matches_the_closed_form(skewed, rule):
    values, _, negative = skewed
    mode, low, high, n = side_summary(values, "negative", rule)
    assert n == N
    assert abs(mode + np.exp(-2.0 - 0.4**2)) <= 0.03  # the log-normal's mode, within a bin
    # D = -X: P(D <= d) = P(X >= -d), and its p-quantile is minus X's (1 - p)-quantile.
    want = closed_form(
        rule, mode, lambda d: negative.sf(-d), lambda p: -negative.ppf(1 - p), values[values < 0]
    )
    np.testing.assert_allclose((low, high), want, atol=ATOL)


def test_the_rules_part_on_a_skewed_side(skewed):
    values, positive, _ = skewed
    _, side_low, side_high, _ = side_summary(values, "positive", "side_68")
    _, central_low, central_high, _ = side_summary(values, "positive", "central_68")
    # 12% of D+ lies below its mode: central_68 runs out of values there and clips at the minimum,
    # and its upper bar holds only 34% of the values, not 68% of those above the mode.
    assert central_low == values[values > 0].min() < side_low
    assert side_high > central_high + 0.04


@pytest.mark.parametrize("rule", ["side_68", "central_68"])
def test_both_rules_give_mu_plus_minus_sigma_for_a_normal_side(rule):
    rng = np.random.default_rng(3)
    mu, sigma = 0.41, 0.05  # mu is a bin centre, so the mode is mu
    mode, low, high, _ = side_summary(rng.normal(mu, sigma, N), "positive", rule)
    assert mode == pytest.approx(mu)
    # 68% (not 68.27%) of the mass: z = 0.9945 rather than 1.
    z = stats.norm.ppf(0.84)
    np.testing.assert_allclose((low, high), (mu - z * sigma, mu + z * sigma), atol=ATOL)


# Nine D+ values; the bin [0.10, 0.12] holds four of them, so the mode is 0.11, five values lie
# below it and four above.
HAND = np.array([0.03, 0.06, 0.1025, 0.105, 0.1075, 0.115, 0.3, 0.5, 0.9])


def test_side_68_by_hand():
    mode, low, high, n = side_summary(np.concatenate([HAND, [0.0]]), "positive", "side_68")
    assert (mode, n) == (pytest.approx(0.11), 9)
    # Below: 0.03 0.06 0.1025 0.105 0.1075, 32% quantile at rank 0.32 * 4 = 1.28.
    assert low == pytest.approx(0.06 + 0.28 * (0.1025 - 0.06))
    # Above: 0.115 0.3 0.5 0.9, 68% quantile at rank 0.68 * 3 = 2.04.
    assert high == pytest.approx(0.5 + 0.04 * (0.9 - 0.5))
    # The negative side mirrors it.
    mirrored = side_summary(-HAND, "negative", "side_68")
    np.testing.assert_allclose(mirrored, (-mode, -high, -low, 9))


def test_central_68_by_hand():
    mode, low, high, _ = side_summary(HAND, "positive", "central_68")
    assert mode == pytest.approx(0.11)
    # 5 of 9 values <= mode; quantiles 5/9 -+ 0.34 at ranks 8 * p over all nine values.
    rank_low, rank_high = 8 * (5 / 9 - 0.34), 8 * (5 / 9 + 0.34)
    assert low == pytest.approx(0.06 + (rank_low - 1) * (0.1025 - 0.06))
    assert high == pytest.approx(0.5 + (rank_high - 7) * (0.9 - 0.5))


def test_side_68_bar_with_nothing_beyond_the_mode_is_the_mode():
    mode, low, high, _ = side_summary(np.array([0.111, 0.112, 0.6]), "positive", "side_68")
    assert mode == pytest.approx(0.11) and low == mode
    assert high == pytest.approx(0.112 + 0.36 * (0.6 - 0.112))


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="interval must be one of"):
        side_summary(HAND, "positive", "central_95")


def test_figure_5_names_its_one_rule_and_refuses_a_mix():
    import pandas as pd

    from cnn_feature_behavior.reporting.figures import interval_rule

    table = pd.DataFrame({"dataset": ["a", "a", "b"], "interval": ["side_68"] * 3})
    assert interval_rule(table) == "side_68"
    assert interval_rule(table.drop(columns="interval")) is None
    table.loc[2, "interval"] = "central_68"
    with pytest.raises(ValueError, match="central_68: b; side_68: a"):
        interval_rule(table)
