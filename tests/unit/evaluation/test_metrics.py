import re

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.metrics import (
    METRICS,
    C2STGap,
    DownstreamAccuracy,
    JointTVDistance,
    TVDistance,
    WassersteinDistance,
    bin_codes,
    c2st_gap,
    downstream_utility,
    joint_tvd,
    per_variable_c2st,
    quantile_edges,
    tvd,
    wasserstein,
)


def test_tvd__identical():
    # Run
    distance = tvd(pd.Series(['a', 'b', 'b']), pd.Series(['b', 'a', 'b']))

    # Assert
    assert distance == 0.0


def test_tvd__disjoint():
    # Run
    distance = tvd(['a', 'a', 'b'], ['c', 'd'])

    # Assert
    assert distance == pytest.approx(1.0)


def test_tvd__known_value_and_missing_as_category():
    # Run
    distance = tvd(['a', 'a', 'b', 'b'], ['a', 'b', 'b', 'b'])
    with_missing = tvd(['a', None], ['a', 'a'])

    # Assert
    assert distance == pytest.approx(0.25)
    assert with_missing == pytest.approx(0.5)


def test_tvd__empty():
    # Run and Assert
    message = 'Cannot compute the total variation distance on empty data: got 0 real and 2 '
    with pytest.raises(EvaluationError, match=re.escape(message)):
        tvd([], ['a', 'b'])


def test_wasserstein__shifted_sample():
    # Setup
    values = np.random.default_rng(0).normal(size=2000)

    # Run
    same = wasserstein(values, values)
    shifted = wasserstein(values, values + 3.0)

    # Assert
    assert same == 0.0
    assert shifted == pytest.approx(3.0)


def test_wasserstein__drops_missing():
    # Run
    distance = wasserstein([1.0, np.nan, 2.0], [1.0, 2.0])

    # Assert
    assert distance == 0.0


def test_quantile_edges__deduplicated():
    # Run
    edges = quantile_edges([1, 1, 1, 1, 2, 3], num_bins=3)

    # Assert
    assert list(edges) == sorted(set(edges))
    assert edges[0] == 1 and edges[-1] == 3


def test_bin_codes__left_closed_open_ended():
    # Run
    codes = bin_codes([-5.0, 0.0, 0.99, 1.0, 2.0, 99.0, np.nan], [0.0, 1.0, 2.0])

    # Assert
    assert list(codes) == [0, 0, 0, 1, 1, 1, -1]


def test_bin_codes__invalid_edges():
    # Run and Assert
    message = 'Bin edges must be at least two strictly increasing numbers. Got [1.0, 1.0].'
    with pytest.raises(EvaluationError, match=re.escape(message)):
        bin_codes([1.0], [1.0, 1.0])


def test_joint_tvd__identical_and_disjoint():
    # Setup
    real = pd.DataFrame({'a': ['x', 'x', 'y', 'y'], 'b': ['u', 'v', 'u', 'v']})
    crossed = pd.DataFrame({'a': ['x', 'x', 'y', 'y'], 'b': ['u', 'u', 'v', 'v']})

    # Run
    same = joint_tvd(real, real.sample(frac=1, random_state=0), ['a', 'b'])
    different = joint_tvd(real, crossed, ['a', 'b'])
    marginal = joint_tvd(real, crossed, ['a'])

    # Assert
    assert same == 0.0
    assert different == pytest.approx(0.5)  # cells (x,v) and (y,u) lose 1/4 each
    assert marginal == 0.0


def test_joint_tvd__numeric_with_given_edges():
    # Setup
    real = pd.DataFrame({'age': [20.0, 30.0, 40.0, 60.0], 'g': ['m', 'f', 'm', 'f']})
    synthetic = pd.DataFrame({'age': [21.0, 31.0, 41.0, 95.0], 'g': ['m', 'f', 'm', 'f']})
    moved = pd.DataFrame({'age': [40.0, 30.0, 40.0, 60.0], 'g': ['m', 'f', 'm', 'f']})

    # Run
    same_bins = joint_tvd(real, synthetic, ['age', 'g'], bins={'age': [18, 35, 55, 90]})
    one_moved = joint_tvd(real, moved, ['age', 'g'], bins={'age': [18, 35, 55, 90]})

    # Assert
    assert same_bins == 0.0
    assert one_moved == pytest.approx(0.25)


def test_joint_tvd__quantile_bins_by_default():
    # Setup
    rng = np.random.default_rng(0)
    real = pd.DataFrame({'x': rng.normal(size=3000)})
    shifted = pd.DataFrame({'x': rng.normal(size=3000) + 10.0})

    # Run
    distance = joint_tvd(real, shifted, ['x'])

    # Assert: every shifted value lands in the open-ended top bin, 1/6 of the real mass.
    assert distance == pytest.approx(5 / 6, abs=0.01)


def test_joint_tvd__missing_column():
    # Setup
    real = pd.DataFrame({'a': [1]})

    # Run and Assert
    message = "Columns ['b'] are missing from the real data."
    with pytest.raises(EvaluationError, match=re.escape(message)):
        joint_tvd(real, real, ['b'])


def test_c2st_gap__same_distribution():
    # Setup
    rng = np.random.default_rng(0)
    real = pd.DataFrame({'x': rng.normal(size=1000), 'c': rng.choice(['a', 'b'], 1000)})
    synthetic = pd.DataFrame({'x': rng.normal(size=1000), 'c': rng.choice(['a', 'b'], 1000)})

    # Run
    gap = c2st_gap(real, synthetic, seed=0, classifier='logistic')

    # Assert
    assert gap < 0.05


def test_c2st_gap__disjoint_distributions():
    # Setup
    rng = np.random.default_rng(0)
    real = pd.DataFrame({'x': rng.normal(size=500), 'c': rng.choice(['a', 'b'], 500)})
    synthetic = pd.DataFrame({'x': rng.normal(size=800) + 10, 'c': rng.choice(['a', 'b'], 800)})

    # Run
    gap_logistic = c2st_gap(real, synthetic, seed=0, classifier='logistic')
    gap_boosting = c2st_gap(real, synthetic, ['x'], seed=0)

    # Assert
    assert gap_logistic > 0.45
    assert gap_boosting > 0.45


def test_c2st_gap__sees_dependence_with_gradient_boosting():
    # Setup: same marginals, but the synthetic rows break the x-c dependence.
    rng = np.random.default_rng(1)
    labels = rng.choice(['a', 'b'], 1000)
    real = pd.DataFrame({'x': np.where(labels == 'a', 0.0, 5.0) + rng.normal(size=1000),
                         'c': labels})
    other_labels = rng.choice(['a', 'b'], 1000)
    synthetic = pd.DataFrame({
        'x': np.where(other_labels == 'a', 0.0, 5.0) + rng.normal(size=1000),
        'c': rng.choice(['a', 'b'], 1000),
    })

    # Run
    marginal_gaps = per_variable_c2st(real, synthetic, seed=0)
    row_gap = c2st_gap(real, synthetic, seed=0)

    # Assert
    assert marginal_gaps['x'] < 0.05
    assert marginal_gaps['c'] < 0.05
    assert row_gap > 0.15  # half the synthetic rows are impossible: the best gap is 0.25


def test_c2st_gap__unknown_classifier():
    # Setup
    data = pd.DataFrame({'x': np.arange(20.0)})
    message = (
        "The 'classifier' parameter must be 'logistic' or 'gradient_boosting'. "
        "Got 'svm' instead."
    )

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape(message)):
        c2st_gap(data, data, classifier='svm')


def test_c2st_gap__too_few_rows():
    # Setup
    data = pd.DataFrame({'x': [1.0, 2.0]})
    message = 'c2st_gap needs at least 5 rows in each table. Got 2 real and 2 synthetic rows.'

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape(message)):
        c2st_gap(data, data)


def _labelled(num_rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=num_rows)
    group = rng.choice(['a', 'b'], num_rows)
    label = np.where((x > 0) ^ (group == 'b'), 'yes', 'no')
    return pd.DataFrame({'x': x, 'group': group, 'label': label})


def test_downstream_utility__learnable_target():
    # Setup
    train = _labelled(1000, 0)
    test = _labelled(500, 1)

    # Run
    results = downstream_utility(train, test, 'label', ['x', 'group'], seed=0,
                                 models=['decision_tree', 'random_forest'])

    # Assert
    assert set(results) == {'decision_tree', 'random_forest'}
    for scores in results.values():
        assert scores['accuracy'] > 0.95
        assert scores['macro_f1'] > 0.95


def test_downstream_utility__single_class_training():
    # Setup
    train = _labelled(100, 0).assign(label='yes')
    test = _labelled(400, 1)
    share = (test['label'] == 'yes').mean()

    # Run
    results = downstream_utility(train, test, 'label', ['x', 'group'], seed=0)

    # Assert
    for scores in results.values():
        assert scores['accuracy'] == pytest.approx(share)


def test_downstream_utility__unknown_model():
    # Setup
    data = _labelled(20, 0)
    message = (
        "Unknown downstream models ['svm']. Expected a subset of "
        "['logistic_regression', 'decision_tree', 'random_forest']."
    )

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape(message)):
        downstream_utility(data, data, 'label', ['x'], models=['svm'])


def test_metric_classes__declare_goal_and_range():
    # Run
    declared = {name: (metric.goal, metric.min_value, metric.max_value)
                for name, metric in METRICS.items()}

    # Assert
    assert declared == {
        'Total Variation Distance': ('minimize', 0.0, 1.0),
        'Wasserstein Distance': ('minimize', 0.0, float('inf')),
        'Joint Total Variation Distance': ('minimize', 0.0, 1.0),
        'C2ST Gap': ('minimize', 0.0, 0.5),
        'Downstream Accuracy': ('maximize', 0.0, 1.0),
    }


def test_metric_classes__compute_and_normalize():
    # Setup
    real = _labelled(300, 0)
    synthetic = _labelled(300, 1)

    # Run
    tvd_score = TVDistance.compute(['a', 'b'], ['a', 'a'])
    wasserstein_score = WassersteinDistance.compute([0.0, 1.0], [1.0, 2.0])
    joint_score = JointTVDistance.compute(real[['group']], real[['group']])
    gap = C2STGap.compute(real, synthetic, classifier='logistic')
    accuracy = DownstreamAccuracy.compute(real, synthetic, target='label', features=['x', 'group'])

    # Assert
    assert tvd_score == pytest.approx(0.5)
    assert TVDistance.normalize(tvd_score) == pytest.approx(0.5)
    assert WassersteinDistance.normalize(wasserstein_score) == pytest.approx(0.5)
    assert joint_score == 0.0
    assert 0.0 <= gap <= 0.5
    assert C2STGap.normalize(0.5) == 0.0
    assert 0.5 < accuracy <= 1.0
    assert DownstreamAccuracy.normalize(accuracy) == accuracy
