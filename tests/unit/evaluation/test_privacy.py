import re

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.privacy import (
    RowEmbedder,
    alpha_precision_beta_recall,
    c2st_detection,
    dcr_share,
)


def _table(num_rows, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'x': rng.normal(shift, 1.0, num_rows),
        'y': rng.normal(0.0, 1.0, num_rows),
        'c': rng.choice(['a', 'b', 'c'], num_rows),
    })


def test_alpha_precision_beta_recall__same_distribution():
    # Setup
    real, synthetic = _table(800, seed=1), _table(800, seed=2)

    # Run
    result = alpha_precision_beta_recall(real, synthetic)

    # Assert
    assert result['alpha_precision'] > 0.9
    assert 0.4 < result['beta_recall'] < 0.6
    assert len(result['precision_curve']) == len(result['levels']) == 30


def test_alpha_precision_beta_recall__disjoint_distributions():
    # Setup
    real, synthetic = _table(500, seed=1), _table(500, seed=2, shift=50.0)

    # Run
    result = alpha_precision_beta_recall(real, synthetic)

    # Assert
    assert result['alpha_precision'] == pytest.approx(0.0, abs=0.01)
    assert result['beta_recall'] == pytest.approx(0.0, abs=0.01)
    assert result['authenticity'] == 1.0


def test_alpha_precision_beta_recall__mode_collapse_has_low_recall():
    # Setup
    real = _table(500, seed=1)
    collapsed = pd.DataFrame({'x': [0.0] * 500, 'y': [0.0] * 500, 'c': ['a'] * 500})

    # Run
    result = alpha_precision_beta_recall(real, collapsed)

    # Assert
    assert result['beta_recall'] < 0.1
    assert result['alpha_precision'] < 0.2


def test_alpha_precision_beta_recall__copies_are_not_authentic():
    # Setup
    real = _table(300, seed=1)

    # Run
    result = alpha_precision_beta_recall(real, real.copy())

    # Assert
    assert result['authenticity'] == 0.0
    assert result['alpha_precision'] == pytest.approx(1.0, abs=0.01)
    # Every real row has its copy at distance 0: recall saturates at 1, far above the ~0.5
    # that a fresh sample of the same distribution gets.
    assert result['beta_recall'] == pytest.approx(1.0, abs=0.01)


def test_alpha_precision_beta_recall__balances_sizes():
    # Setup
    real, synthetic = _table(1000, seed=1), _table(100, seed=2)

    # Run
    result = alpha_precision_beta_recall(real, synthetic)

    # Assert
    assert result['num_real_rows'] == result['num_synthetic_rows'] == 100


def test_alpha_precision_beta_recall__too_few_rows_raise():
    # Setup
    real = _table(10, seed=1)

    # Run and Assert
    message = (
        'alpha-precision and beta-recall need at least 2 rows in each table. Got 1 real and 1 '
        'synthetic rows.'
    )
    with pytest.raises(EvaluationError, match=re.escape(message)):
        alpha_precision_beta_recall(real, real.iloc[:1])


def test_dcr_share__same_distribution_is_about_one_half():
    # Setup
    train, holdout, synthetic = _table(600, seed=1), _table(600, seed=2), _table(600, seed=3)

    # Run
    result = dcr_share(train, holdout, synthetic)

    # Assert
    assert result['dcr_share'] == pytest.approx(0.5, abs=0.07)
    assert result['num_exact_train_copies'] == 0


def test_dcr_share__copies_of_train_score_one():
    # Setup
    train, holdout = _table(400, seed=1), _table(400, seed=2)

    # Run
    result = dcr_share(train, holdout, train.iloc[:100])

    # Assert
    assert result['dcr_share'] == 1.0
    assert result['num_exact_train_copies'] == 100
    assert result['median_dcr_train'] == 0.0


def test_dcr_share__copies_of_holdout_score_zero():
    # Setup
    train, holdout = _table(400, seed=1), _table(400, seed=2)

    # Run
    result = dcr_share(train, holdout, holdout.iloc[:100])

    # Assert
    assert result['dcr_share'] == 0.0


def test_dcr_share__ties_count_one_half():
    # Setup
    train = pd.DataFrame({'c': ['a', 'b']})
    holdout = pd.DataFrame({'c': ['a', 'b']})

    # Run
    result = dcr_share(train, holdout, pd.DataFrame({'c': ['a', 'b', 'a']}))

    # Assert
    assert result['dcr_share'] == 0.5


def test_dcr_share__balances_split_sizes():
    # Setup
    train, holdout = _table(900, seed=1), _table(300, seed=2)

    # Run
    result = dcr_share(train, holdout, _table(50, seed=3))

    # Assert
    assert result['num_train_rows'] == result['num_holdout_rows'] == 300


def test_dcr_share__empty_synthetic_raises():
    # Setup
    train = _table(10, seed=1)

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape('The synthetic data is empty')):
        dcr_share(train, train, train.iloc[:0])


def test_c2st_detection__similar_and_disjoint():
    # Setup
    real = _table(300, seed=1)

    # Run
    similar = c2st_detection(real, _table(300, seed=2))
    disjoint = c2st_detection(real, _table(300, seed=3, shift=10.0))
    repeated = c2st_detection(real, _table(300, seed=2))

    # Assert
    assert similar > 0.8
    assert disjoint < 0.05
    assert repeated == similar


def test_c2st_detection__exact_copies_are_indistinguishable():
    # Setup
    real = _table(300, seed=1)

    # Run
    score = c2st_detection(real, real.copy())

    # Assert
    assert score == pytest.approx(1.0, abs=0.02)


def test_row_embedder__standardises_and_one_hot_encodes():
    # Setup
    real = pd.DataFrame({'x': [1.0, 3.0], 'c': ['a', 'b']})
    embedder = RowEmbedder().fit(real)

    # Run
    matrix = embedder.transform(pd.DataFrame({'x': [2.0, 5.0], 'c': ['b', 'unseen']}))

    # Assert
    assert matrix.tolist() == [[0.0, 0.0, 1.0], [3.0, 0.0, 0.0]]


def test_c2st_detection__small_synthetic_table_against_a_large_real_one():
    # Setup: the synthetic rows use categories a small real subsample might lack.
    real = _table(2000, seed=1)
    synthetic = _table(20, seed=2)

    # Run
    score = c2st_detection(real, synthetic)

    # Assert
    assert 0.0 <= score <= 1.0


def test_c2st_detection__unknown_synthetic_category_raises():
    # Setup
    real = _table(100, seed=1)
    synthetic = _table(100, seed=2)
    synthetic.loc[0, 'c'] = 'never-seen'

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape('The C2ST detection score could not be')):
        c2st_detection(real, synthetic)


def test_metric_classes__declare_goal_and_range():
    # Setup
    from sdv_llmsynthor.evaluation.privacy import AlphaPrecision, BetaRecall, DetectionScore

    real, synthetic = _table(200, seed=1), _table(200, seed=2)

    # Run
    alpha = AlphaPrecision.compute(real, synthetic)
    beta = BetaRecall.compute(real, synthetic)

    # Assert
    assert alpha == alpha_precision_beta_recall(real, synthetic)['alpha_precision']
    assert beta == alpha_precision_beta_recall(real, synthetic)['beta_recall']
    for metric in (AlphaPrecision, BetaRecall, DetectionScore):
        assert metric.goal == 'maximize'
        assert (metric.min_value, metric.max_value) == (0.0, 1.0)
    assert AlphaPrecision.normalize(0.25) == 0.25
