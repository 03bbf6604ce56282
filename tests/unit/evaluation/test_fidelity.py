"""Unit tests of the macro-fidelity report (evaluation/fidelity.py)."""

import re

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata
from toy_tables import household_metadata, unrelated_tables_metadata

from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.fidelity import (
    FidelityReport,
    fidelity_report,
    normalize_run_report,
)
from sdv_llmsynthor.spec import MacroSpec

METADATA = Metadata.load_from_dict({'tables': {'t': {'columns': {
    'gender': {'sdtype': 'categorical'},
    'amount': {'sdtype': 'numerical'},
    'day': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
}}}})

SPEC = {
    'spec_version': '1.0',
    'name': 'toy',
    'tables': {'t': {
        'num_rows': 100,
        'columns': {'amount': {'bins': [0, 10, 20]}, 'day': {'bins': ['2024-01-01',
                                                                     '2024-01-11',
                                                                     '2024-01-21']}},
        'statistics': [
            {'name': 'gender', 'columns': ['gender'],
             'cells': [{'key': ['F'], 'value': 0.5}, {'key': ['M'], 'value': 0.5}]},
            {'name': 'amount', 'columns': ['amount'],
             'cells': [{'key': [[0, 10]], 'value': 0.5}, {'key': [[10, 20]], 'value': 0.5}]},
            {'name': 'day', 'columns': ['day'],
             'cells': [{'key': [['2024-01-01', '2024-01-11']], 'value': 0.5},
                       {'key': [['2024-01-11', '2024-01-21']], 'value': 0.5}]},
            {'name': 'gender x amount', 'columns': ['gender', 'amount'],
             'cells': [{'key': ['F', [0, 10]], 'value': 0.25},
                       {'key': ['F', [10, 20]], 'value': 0.25},
                       {'key': ['M', [0, 10]], 'value': 0.25},
                       {'key': ['M', [10, 20]], 'value': 0.25}]},
        ],
    }},
}


def _matching_frame():
    return pd.DataFrame({
        'gender': ['F', 'F', 'M', 'M'] * 25,
        'amount': [5.0, 15.0] * 50,
        'day': ['2024-01-05', '2024-01-15'] * 50,
    })


def test_fidelity_report__exact_match_scores_zero():
    """Data whose shares equal the targets: TVD, errors and Wasserstein are 0, all met."""
    # Run
    report = fidelity_report(SPEC, _matching_frame(), METADATA)

    # Assert
    frame = report.to_frame()
    assert list(frame['statistic']) == ['gender', 'amount', 'day', 'gender x amount']
    assert frame['tvd'].max() == pytest.approx(0.0)
    assert frame['max_abs_error'].max() == pytest.approx(0.0)
    assert frame.loc[frame['statistic'] == 'amount', 'wasserstein'].iloc[0] == pytest.approx(0)
    assert frame['met'].all()
    assert list(frame['kind']) == ['marginal', 'marginal', 'marginal', 'joint']
    assert report.num_rows == {'t': 100}


def test_fidelity_report__known_distances():
    """All rows in one cell: TVD 0.5, max error 0.5, Wasserstein half a bin width."""
    # Setup
    frame = pd.DataFrame({'gender': ['F'] * 10, 'amount': [3.0] * 10,
                          'day': ['2024-01-02'] * 10})

    # Run
    report = fidelity_report(SPEC, frame, METADATA)

    # Assert
    rows = report.to_frame().set_index('statistic')
    assert rows.loc['gender', 'tvd'] == pytest.approx(0.5)
    assert rows.loc['gender', 'max_abs_error'] == pytest.approx(0.5)
    assert rows.loc['amount', 'wasserstein'] == pytest.approx(5.0)
    assert rows.loc['amount', 'cell_width'] == pytest.approx(10.0)
    assert rows.loc['day', 'wasserstein'] == pytest.approx(5.0)
    assert rows.loc['gender x amount', 'tvd'] == pytest.approx(0.75)
    assert not rows['met'].any()


def test_fidelity_report__rows_outside_listed_cells_count_in_the_rest():
    """Out-of-range values land in the rest cell and raise the TVD."""
    # Setup
    frame = _matching_frame()
    frame.loc[:49, 'amount'] = 99.0

    # Run
    report = fidelity_report(SPEC, frame, METADATA)

    # Assert
    cells = report.cells[('t', 'amount')]
    assert cells['cell'].iloc[-1] == '(rest: no listed cell)'
    assert cells['synthetic_share'].iloc[-1] == pytest.approx(0.5)
    assert report.to_frame().set_index('statistic').loc['amount', 'tvd'] == pytest.approx(0.5)


def test_fidelity_report__parent_child_tables_with_derived_columns():
    """Child counts and cross-table statistics are computed from the child rows."""
    # Setup
    households = pd.DataFrame({'hid': [0, 1, 2, 3], 'tenure': ['Owned', 'Rented'] * 2})
    persons = pd.DataFrame({'pid': range(10), 'hid': [0, 0, 1, 1, 1, 2, 2, 3, 3, 3],
                            'age': [30, 70, 20, 25, 5, 40, 41, 66, 10, 12]})
    metadata = household_metadata()
    data = {'households': households, 'persons': persons}
    spec = MacroSpec.from_data(data, metadata, joints=None, derived={'households': {
        'has_elderly': {'child_table': 'persons', 'function': 'any', 'predicate': 'age >= 65'},
    }})

    # Run
    report = fidelity_report(spec, data, metadata)

    # Assert
    frame = report.to_frame().set_index('statistic')
    assert frame.loc['child_count:persons', 'kind'] == 'child count'
    assert frame.loc['has_elderly', 'kind'] == 'cross-table marginal'
    assert frame['tvd'].max() == pytest.approx(0.0, abs=1e-6)


def test_fidelity_report__one_frame_for_two_tables_raises():
    """A single DataFrame cannot stand for several tables."""
    # Setup
    metadata = unrelated_tables_metadata()

    # Run and Assert
    message = "synthetic is one DataFrame but the metadata has tables ['a', 'b']"
    with pytest.raises(EvaluationError, match=re.escape(message)):
        fidelity_report({'spec_version': '1.0', 'tables': {'a': {}}},
                        pd.DataFrame({'x': ['1']}), metadata)


def test_save__writes_markdown_csv_and_plots(tmp_path):
    """save writes report.md, statistics.csv, cells.csv, bars, heatmaps and convergence."""
    # Setup
    run = {
        'history': pd.DataFrame({'iteration': [0, 1, 2], 'mean_tvd': [0.3, 0.1, 0.01],
                                 'max_tvd': [0.5, 0.2, 0.02]}),
        'rejections': pd.DataFrame([{'table': 't', 'rule': 'adult', 'checked': 10,
                                     'rejected': 2, 'rate': 0.2}]),
        'usage': {'llm_calls': 3, 'prompt_tokens': 100, 'completion_tokens': 50,
                  'cached_calls': 0, 'discarded': {'invalid_json': 1}, 'model': 'm'},
        'unmet': pd.DataFrame([{'statistic': 'amount', 'reason': 'too few'}]),
    }

    # Run
    report = fidelity_report(SPEC, _matching_frame(), METADATA, run=run,
                             output_dir=tmp_path / 'r')

    # Assert
    names = {path.name for path in (tmp_path / 'r').iterdir()}
    assert {'report.md', 'statistics.csv', 'cells.csv', 'rejections.csv', 'usage.json',
            'convergence.png', 'marginal_t_gender.png', 'marginal_t_amount.png',
            'joint_t_gender_x_amount.png'} <= names
    text = (tmp_path / 'r' / 'report.md').read_text()
    assert '# Fidelity report: toy' in text
    assert '## Rejected records' in text and '| t | adult | 10 | 2 | 0.2 |' in text
    assert '| invalid_json | 1 |' in text
    assert '## Statistics the run could not meet' in text
    assert report.discarded == {'invalid_json': 1}
    assert isinstance(report, FidelityReport)


def test_normalize_run_report__accepts_objects_with_attributes():
    """An object with history/rejections/usage attributes (a SynthesisResult) is accepted."""
    # Setup
    class Result:
        history = [{'iteration': 0, 'mean_tvd': 0.1, 'max_tvd': 0.2}]
        rejections = pd.DataFrame({'table': ['t'], 'rule': ['r'], 'checked': [1],
                                   'rejected': [0], 'rate': [0.0]})
        usage = {'llm_calls': 0, 'discarded': {}}
        unmet = pd.DataFrame(columns=['statistic'])

    # Run
    normalized = normalize_run_report(Result())

    # Assert
    assert list(normalized['history'].columns) == ['iteration', 'mean_tvd', 'max_tvd']
    assert normalized['rejections'].shape == (1, 5)
    assert normalized['unmet'] == []
    assert normalize_run_report(None)['history'] is None


def test_fidelity_report__statistic_rows_are_numeric():
    """TVD and errors are plain floats in [0, 1]."""
    # Run
    frame = fidelity_report(SPEC, _matching_frame().sample(frac=0.7, random_state=0),
                            METADATA).to_frame()

    # Assert
    assert frame['tvd'].between(0, 1).all()
    assert frame['max_abs_error'].between(0, 1).all()
    assert np.issubdtype(frame['tvd'].dtype, np.floating)
