"""Tests of the discrepancy and the anchor selection."""

import re

import numpy as np
import pandas as pd
import pytest
from engine_specs import SINGLE_METADATA, single_spec

from sdv_llmsynthor.core.aggregate import aggregate_frame
from sdv_llmsynthor.core.anchors import select_anchors
from sdv_llmsynthor.core.discrepancy import compute_discrepancy
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.planners.base import Range


def _discrepancy(frame, target_rows=100, **table_updates):
    encoding = compile_table(single_spec(**table_updates), SINGLE_METADATA, 'shop')
    counts = aggregate_frame(encoding, frame)
    return encoding, compute_discrepancy(counts, {'shop': target_rows})


def _frame(gender, age=30.0):
    return pd.DataFrame({'gender': gender, 'age': age, 'city': 'Paris', 'price': 5.0})


def test_compute_discrepancy__deficits_and_tvd():
    # Setup
    frame = _frame(['Male'] * 30 + ['Female'] * 10)

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=100)

    # Assert
    gender = discrepancy.get('gender')
    np.testing.assert_allclose(gender.deficits, [40 - 30, 60 - 10])
    # Current shares 0.75 / 0.25 vs targets 0.4 / 0.6.
    assert gender.tvd == pytest.approx(0.35)
    assert gender.max_abs_error == pytest.approx(0.35)
    assert discrepancy.get('city').tvd == pytest.approx(0.5)


def test_compute_discrepancy__tolerance_zeroes_small_deficits():
    # Setup
    frame = _frame(['Male'] * 38 + ['Female'] * 62)
    statistics = [{'name': 'gender', 'columns': ['gender'], 'tolerance': 0.03,
                   'cells': [{'key': ['Male'], 'value': 0.4},
                             {'key': ['Female'], 'value': 0.6}]}]

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=100, statistics=statistics)

    # Assert
    gender = discrepancy.get('gender')
    np.testing.assert_allclose(gender.deficits, [0.0, 0.0])
    assert gender.is_met()


def test_compute_discrepancy__rows_outside_listed_cells_count_in_tvd():
    # Setup
    frame = _frame(['Male'] * 40 + ['Female'] * 40 + ['Unknown'] * 20)

    # Run
    _, discrepancy = _discrepancy(frame)

    # Assert
    gender = discrepancy.get('gender')
    assert gender.rest_count == 20
    assert gender.tvd == pytest.approx(0.5 * (0.0 + 0.2 + 0.2))


def test_top_cells__renders_attributable_text():
    # Setup
    frame = _frame(['Male'] * 10, age=40.0)

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=2000)
    top = discrepancy.top_cells(3)
    over = discrepancy.top_cells(2, direction='over')

    # Assert
    assert top[0].render() == 'gender = Female: +1200 records (+60.0%)'
    assert top[1].render() == 'price in [10, 100): +1000 records (+50.0%)'
    assert top[2].render() == 'city = Paris: +990 records (+49.5%)'
    assert over == []
    joint = [c for c in discrepancy.top_cells(50) if c.label == 'age x gender']
    assert joint[0].render() == 'age in [45, 90] & gender = Female: +500 records (+25.0%)'


def test_top_cells__over_represented_direction():
    # Setup
    frame = _frame(['Male'] * 300)

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=100)
    over = discrepancy.top_cells(1, direction='over')

    # Assert
    # 300 rows of "age 30, Male" against a target of 15% of 100 rows.
    assert over[0].render() == 'age in [30, 45) & gender = Male: -285 records (-285.0%)'


def test_top_cells__bad_direction_raises():
    # Setup
    _, discrepancy = _discrepancy(_frame(['Male']))

    # Run and Assert
    message = "The 'direction' parameter must be 'under', 'over' or 'both'. Got 'up' instead."
    with pytest.raises(ValueError, match=re.escape(message)):
        discrepancy.top_cells(1, direction='up')


def test_select_anchors__joint_before_marginal_and_covered_marginal_skipped():
    # Setup
    statistics = [
        {'name': 'gender', 'columns': ['gender'],
         'cells': [{'key': ['Male'], 'value': 0.5}, {'key': ['Female'], 'value': 0.5}]},
        {'name': 'age x gender', 'columns': ['age', 'gender'],
         'cells': [{'key': [[18, 90], 'Male'], 'value': 0.5},
                   {'key': [[18, 90], 'Female'], 'value': 0.5}]},
    ]
    frame = _frame(['Male'] * 0 + ['Female'] * 50)

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=100, statistics=statistics)
    anchors = select_anchors(discrepancy, max_anchors=5, batch_rows=1000)

    # Assert
    # "gender = Male" (deficit 50) is covered by the joint cell "age in [18, 90] & Male".
    assert len(anchors) == 1
    assert anchors[0].statistic == 'age x gender'
    assert anchors[0].fixed == {'age': Range(18.0, 90.0), 'gender': 'Male'}
    assert anchors[0].records == 50


def test_select_anchors__marginal_keeps_what_the_joint_does_not_fill():
    # Setup
    statistics = [
        {'name': 'gender', 'columns': ['gender'], 'weight': 10.0,
         'cells': [{'key': ['Male'], 'value': 0.8}, {'key': ['Female'], 'value': 0.2}]},
        {'name': 'age x gender', 'columns': ['age', 'gender'],
         'cells': [{'key': [[18, 30], 'Male'], 'value': 0.3},
                   {'key': [[30, 90], 'Male'], 'value': 0.2},
                   {'key': [[18, 90], 'Female'], 'value': 0.5}]},
    ]

    # Run
    _, discrepancy = _discrepancy(_frame(['Female'] * 20), target_rows=100,
                                  statistics=statistics)
    anchors = select_anchors(discrepancy, max_anchors=10, batch_rows=1000)

    # Assert
    by_text = {a.text: a.records for a in anchors}
    assert by_text['age in [18, 30) & gender = Male'] == 30
    assert by_text['age in [30, 90] & gender = Male'] == 20
    assert by_text['gender = Male'] == 30
    assert by_text['age in [18, 90] & gender = Female'] == 30
    assert [len(a.fixed) for a in anchors] == [2, 2, 2, 1]


def test_select_anchors__records_scaled_to_the_budget():
    # Setup
    _, discrepancy = _discrepancy(_frame(['Male']), target_rows=10_000)

    # Run
    anchors = select_anchors(discrepancy, max_anchors=4, batch_rows=100)

    # Assert
    assert len(anchors) == 4
    assert sum(a.records for a in anchors) == 100
    assert len({a.anchor_id for a in anchors}) == 4


def test_select_anchors__nothing_under_represented():
    # Setup
    frame = _frame(['Male'] * 40 + ['Female'] * 60)
    statistics = [{'name': 'gender', 'columns': ['gender'],
                   'cells': [{'key': ['Male'], 'value': 0.4},
                             {'key': ['Female'], 'value': 0.6}]}]

    # Run
    _, discrepancy = _discrepancy(frame, target_rows=100, statistics=statistics)
    anchors = select_anchors(discrepancy, max_anchors=5, batch_rows=50)

    # Assert
    assert anchors == []
