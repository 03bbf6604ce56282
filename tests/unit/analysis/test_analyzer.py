import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sdv.metadata import Metadata

from sdv_llmsynthor.analysis import (
    NearCopyIndex,
    ReferenceProfile,
    StatisticalAnalyzer,
    get_column_kinds,
)
from sdv_llmsynthor.errors import EvaluationError


def _mixed_table(num_rows=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'age': rng.integers(18, 80, num_rows),
        'income': rng.normal(50_000, 10_000, num_rows).round(2),
        'color': rng.choice(['red', 'green', 'blue'], num_rows, p=[0.5, 0.3, 0.2]),
        'label': rng.choice(['yes', 'no'], num_rows),
    })


def _entry(report, column):
    return next(entry for entry in report.columns if entry['column'] == column)


def test_analyze__identical_tables():
    # Setup
    real = _mixed_table()
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    report = analyzer.analyze(real, real.copy())

    # Assert
    for column in ('age', 'income'):
        entry = _entry(report, column)
        assert entry['ks_statistic'] == 0.0
        assert entry['range_coverage'] == 1.0
        assert entry['js_divergence'] == pytest.approx(0.0, abs=1e-12)
        assert entry['kl_divergence'] == pytest.approx(0.0, abs=1e-12)
    for column in ('color', 'label'):
        entry = _entry(report, column)
        assert entry['tvd'] == 0.0
        assert entry['category_coverage'] == 1.0
        assert entry['chi2_pvalue'] > 0.99
    assert report.correlation['numeric_similarity'] == pytest.approx(1.0)
    assert report.correlation['categorical_similarity'] == pytest.approx(1.0)
    assert report.score == pytest.approx(1.0)
    assert report.privacy == {'checked': False}


def test_analyze__shifted_numeric_column_has_known_ks_and_range_coverage():
    # Setup
    real = pd.DataFrame({'x': np.arange(100)})
    synthetic = pd.DataFrame({'x': np.arange(100) + 10})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'x')

    # Assert
    assert entry['ks_statistic'] == pytest.approx(0.10)
    assert entry['range_coverage'] == pytest.approx(89 / 99)
    assert entry['out_of_range_share'] == pytest.approx(0.10)
    assert entry['synthetic_mean'] - entry['real_mean'] == pytest.approx(10.0)


def test_analyze__chi_squared_on_known_counts():
    # Setup
    real = pd.DataFrame({'c': ['a'] * 500 + ['b'] * 500})
    synthetic = pd.DataFrame({'c': ['a'] * 70 + ['b'] * 30})
    analyzer = StatisticalAnalyzer(smoothing=0.0, check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'c')

    # Assert
    assert entry['chi2_statistic'] == pytest.approx(16.0)
    assert entry['chi2_pvalue'] == pytest.approx(stats.chi2.sf(16.0, 1))
    assert entry['tvd'] == pytest.approx(0.2)
    assert entry['deviations'][0]['real_share'] == pytest.approx(0.5)


def test_analyze__kl_and_js_on_known_shares():
    # Setup
    real = pd.DataFrame({'c': ['a'] * 500 + ['b'] * 500})
    synthetic = pd.DataFrame({'c': ['a'] * 70 + ['b'] * 30})
    analyzer = StatisticalAnalyzer(smoothing=0.0, check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'c')

    # Assert
    kl = 0.5 * np.log(0.5 / 0.7) + 0.5 * np.log(0.5 / 0.3)
    p, q, m = np.array([0.5, 0.5]), np.array([0.7, 0.3]), np.array([0.6, 0.4])
    js_bits = (0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))) / np.log(2)
    assert entry['kl_divergence'] == pytest.approx(kl)
    assert entry['js_divergence'] == pytest.approx(js_bits)
    assert entry['category_coverage'] == 1.0


def test_report__worst_columns_text_lists_the_lowest_scores_first():
    # Setup
    real = _mixed_table()
    synthetic = real.copy()
    synthetic['color'] = 'red'
    synthetic['age'] = synthetic['age'] + 30
    report = StatisticalAnalyzer(check_privacy=False).analyze(real, synthetic)

    # Run
    text = report.worst_columns_text(2)

    # Assert
    lines = text.splitlines()
    assert len(lines) == 2
    assert {line.split(' ')[1] for line in lines} == {'color', 'age'}
    assert report.worst_columns_text(0) == ''


def test_analyze__disjoint_categories_have_js_one():
    # Setup
    real = pd.DataFrame({'c': ['a', 'b'] * 10})
    synthetic = pd.DataFrame({'c': ['x', 'y'] * 10})
    analyzer = StatisticalAnalyzer(smoothing=0.0, check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'c')

    # Assert
    assert entry['js_divergence'] == pytest.approx(1.0)
    assert entry['kl_divergence'] == np.inf
    assert entry['category_coverage'] == 0.0
    assert entry['unseen_categories'] == ['x', 'y']


def test_analyze__category_coverage_lists_missing_categories_by_frequency():
    # Setup
    real = pd.DataFrame({'c': ['a'] * 5 + ['b'] * 4 + ['c'] * 3 + ['d'] * 1})
    synthetic = pd.DataFrame({'c': ['b', 'c', 'b']})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'c')

    # Assert
    assert entry['category_coverage'] == 0.5
    assert entry['missing_categories'] == ['a', 'd']
    assert entry['num_covered'] == 2


def test_analyze__missing_values_are_a_category_not_a_covered_value():
    # Setup
    real = pd.DataFrame({'c': ['a', 'b', None, 'a']})
    synthetic = pd.DataFrame({'c': [None, None, 'a', 'a']})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'c')

    # Assert
    assert entry['category_coverage'] == 0.5
    assert entry['real_missing_share'] == 0.25
    assert entry['synthetic_missing_share'] == 0.5


def test_analyze__correlation_gap_and_rigid_pair():
    # Setup
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    real = pd.DataFrame({'x': x, 'y': rng.normal(size=500)})
    synthetic = pd.DataFrame({'x': x[:200], 'y': 2 * x[:200] + 1})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    correlation = analyzer.analyze(real, synthetic).correlation

    # Assert
    assert correlation['numeric_similarity'] == pytest.approx(0.5, abs=0.05)
    assert correlation['largest_gaps'][0]['pair'] == ('x', 'y')
    assert correlation['rigid_pairs'] == [('x', 'y')]


def test_analyze__categorical_association_similarity():
    # Setup
    rng = np.random.default_rng(2)
    a = rng.choice(['p', 'q', 'r'], 600)
    real = pd.DataFrame({'a': a, 'b': a})
    synthetic = pd.DataFrame({'a': a[:300], 'b': rng.choice(['p', 'q', 'r'], 300)})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    same = analyzer.analyze(real, real.iloc[:300]).correlation['categorical_similarity']
    independent = analyzer.analyze(real, synthetic).correlation['categorical_similarity']

    # Assert
    assert same == pytest.approx(1.0, abs=0.02)
    assert independent < 0.2


def test_analyze__flags_exact_and_near_copies():
    # Setup
    real = pd.DataFrame({
        'x': np.arange(100) * 10.0,
        'c': ['a', 'b', 'c', 'd'] * 25,
    })
    near = real.iloc[[5]].copy()
    near['x'] += 0.5
    far = pd.DataFrame({'x': [10_000.0, 5.0], 'c': ['a', 'zzz']})
    synthetic = pd.concat([real.iloc[[0, 1, 2]], near, far], ignore_index=True)
    analyzer = StatisticalAnalyzer()

    # Run
    report = analyzer.analyze(real, synthetic)

    # Assert
    assert report.privacy['num_exact_copies'] == 3
    assert report.privacy['num_near_copies'] == 4
    assert report.exact_copy_mask.tolist() == [True, True, True, False, False, False]
    assert report.near_copy_mask.tolist() == [True, True, True, True, False, False]
    assert report.privacy['near_copy_share'] == pytest.approx(4 / 6)


def test_analyze__copies_of_real_rows_score_zero():
    # Setup
    real = _mixed_table(100)
    analyzer = StatisticalAnalyzer()

    # Run
    report = analyzer.analyze(real, real.iloc[:50])

    # Assert
    assert report.privacy['num_exact_copies'] == 50
    assert report.score == 0.0


def test_analyze__profile_gives_the_same_report_as_the_frame():
    # Setup
    real, synthetic = _mixed_table(150, seed=3), _mixed_table(40, seed=4)
    analyzer = StatisticalAnalyzer()

    # Run
    profile = analyzer.profile(real)
    from_profile = analyzer.analyze(profile, synthetic)
    from_frame = analyzer.analyze(real, synthetic)

    # Assert
    assert isinstance(profile, ReferenceProfile)
    assert from_profile.to_dict() == from_frame.to_dict()


def test_analyze__empty_synthetic_scores_zero():
    # Setup
    real = _mixed_table(50)
    analyzer = StatisticalAnalyzer()

    # Run
    report = analyzer.analyze(real, real.iloc[:0])

    # Assert
    assert report.score == 0.0
    assert _entry(report, 'age')['ks_statistic'] == 1.0
    assert _entry(report, 'color')['category_coverage'] == 0.0


def test_analyze__datetime_columns_are_compared_as_times():
    # Setup
    real = pd.DataFrame({'when': pd.date_range('2024-01-01', periods=100, freq='D')})
    synthetic = pd.DataFrame({'when': pd.date_range('2024-01-11', periods=100, freq='D')})
    analyzer = StatisticalAnalyzer(check_privacy=False)

    # Run
    entry = _entry(analyzer.analyze(real, synthetic), 'when')

    # Assert
    assert entry['kind'] == 'datetime'
    assert entry['ks_statistic'] == pytest.approx(0.10)


def test_profile__empty_real_raises():
    # Setup
    analyzer = StatisticalAnalyzer()

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape('Cannot profile an empty real table.')):
        analyzer.profile(pd.DataFrame({'x': []}))


def test_report__to_frame_to_dict_and_summary_text():
    # Setup
    real, synthetic = _mixed_table(100, seed=5), _mixed_table(30, seed=6)
    report = StatisticalAnalyzer().analyze(real, synthetic)

    # Run
    frame = report.to_frame()
    as_json = json.dumps(report.to_dict())
    short = report.summary_text(max_lines=4)
    full = report.summary_text(max_lines=100)

    # Assert
    assert frame['column'].tolist() == ['age', 'income', 'color', 'label']
    assert {'ks_statistic', 'chi2_pvalue', 'js_divergence', 'range_coverage'} <= set(frame)
    assert '"score"' in as_json
    assert len(short.splitlines()) == 4
    assert short.splitlines()[-1].endswith('more lines omitted.')
    assert 'Columns, worst first:' in full
    assert all(f'- {column} (' in full for column in ('age', 'income', 'color', 'label'))


def test_near_copy_index__threshold_is_the_quantile_of_real_neighbour_distances():
    # Setup
    real = pd.DataFrame({'x': np.arange(11) * 1.0})

    # Run
    index = NearCopyIndex(real, {'x': 'numerical'}, quantile=0.5)

    # Assert
    assert index.threshold == pytest.approx(0.1)
    assert index.distances(pd.DataFrame({'x': [2.5, 20.0]})).tolist() == pytest.approx([0.05, 1.0])


def test_near_copy_index__missing_values_match_missing_values():
    # Setup
    real = pd.DataFrame({'x': [1.0, np.nan, 3.0], 'c': ['a', None, 'b']})
    index = NearCopyIndex(real, {'x': 'numerical', 'c': 'categorical'}, quantile=0.0)

    # Run
    exact, near, distances = index.flag(pd.DataFrame({'x': [np.nan, np.nan], 'c': [None, 'a']}))

    # Assert
    assert exact.tolist() == [True, False]
    assert distances[1] == pytest.approx(0.5)


def test_get_column_kinds__from_metadata():
    # Setup
    data = pd.DataFrame({
        'id': [1, 2], 'age': [3, 4], 'flag': [True, False], 'email': ['a@b.c', 'd@e.f'],
        'when': ['2024-01-01', '2024-01-02'], 'color': ['r', 'g'],
    })
    metadata = Metadata.load_from_dict({
        'tables': {'t': {
            'primary_key': 'id',
            'columns': {
                'id': {'sdtype': 'id'}, 'age': {'sdtype': 'numerical'},
                'flag': {'sdtype': 'boolean'}, 'email': {'sdtype': 'email', 'pii': True},
                'when': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
                'color': {'sdtype': 'categorical'},
            },
        }},
    })

    # Run
    kinds = get_column_kinds(data, metadata)

    # Assert
    assert kinds == {
        'id': 'id', 'age': 'numerical', 'flag': 'categorical', 'email': 'other',
        'when': 'datetime', 'color': 'categorical',
    }
