"""Tests of the sampler (proposals to records) and of validity checking."""

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.core.anchors import Anchor
from sdv_llmsynthor.core.encoding import ColumnEncoder
from sdv_llmsynthor.core.sampler import (
    PROPOSAL_ID_COLUMN,
    UNIT_COLUMN,
    sample_households,
    sample_proposals,
)
from sdv_llmsynthor.core.validity import RejectionTable, ValidityChecker
from sdv_llmsynthor.planners.base import Proposal, Range
from sdv_llmsynthor.spec.model import RuleSpec


def _encoders():
    day = 86400.0
    start = pd.Timestamp('2024-01-01').timestamp()
    return {
        'age': ColumnEncoder('age', 'numerical', edges=np.array([0, 18, 65, 100.0]),
                             integer=True),
        'price': ColumnEncoder('price', 'numerical', edges=np.array([0, 10, 100.0]),
                               decimals=2),
        'city': ColumnEncoder('city', 'categorical', categories=['Paris', 'Lyon']),
        'size': ColumnEncoder('size', 'numerical', values=np.array([1.0, 2.0, 3.0]),
                              integer=True),
        'when': ColumnEncoder('when', 'datetime', edges=np.array([start, start + 31 * day]),
                              datetime_format='%Y-%m-%d'),
    }


def test_sample_proposals__respects_ranges_integers_and_categories():
    # Setup
    encoders = _encoders()
    proposals = [
        Proposal({'age': Range(18, 20), 'price': Range(5, 7.5), 'city': 'Lyon', 'size': 2},
                 count=500),
        Proposal({'age': Range(64.2, 64.9), 'price': Range(-50, 3), 'city': 'Paris'},
                 count=300),
    ]

    # Run
    frame = sample_proposals(proposals, [7, 8], encoders, np.random.default_rng(0))

    # Assert
    first, second = frame.iloc[:500], frame.iloc[500:]
    assert set(first['age']) == {18, 19}
    assert frame['age'].dtype == np.int64
    assert first['price'].between(5, 7.5).all()
    assert (first['price'] < 7.5).all()
    assert np.allclose(frame['price'], frame['price'].round(2))
    assert set(first['city']) == {'Lyon'}
    assert set(first['size']) == {2}
    # No integer in [64.2, 64.9): each value is rounded to its nearest integer.
    assert set(second['age']) == {64, 65}
    # The range is intersected with [min, max] = [0, 100].
    assert second['price'].between(0, 3).all()
    assert set(second['size']) <= {1, 2, 3}
    assert frame[PROPOSAL_ID_COLUMN].tolist() == [7] * 500 + [8] * 300


def test_sample_proposals__last_bin_of_integer_column_includes_upper_edge():
    # Setup
    encoders = _encoders()

    # Run
    frame = sample_proposals([Proposal({'age': Range(98, 100)}, count=400)], [0], encoders,
                             np.random.default_rng(1))

    # Assert
    assert set(frame['age']) == {98, 99, 100}


def test_sample_proposals__anchor_cell_bounds_the_range():
    # Setup
    encoders = _encoders()
    anchor = Anchor(anchor_id=3, table='t', statistic='age', cell=1, cell_key=None,
                    fixed={'age': Range(18.0, 65.0)}, deficit=10, records=10,
                    fixed_codes={'age': (1, 2)})
    proposals = [
        Proposal({'age': Range(10, 30)}, count=200, anchor_id=3),
        Proposal({'age': Range(70, 80)}, count=200, anchor_id=3),
    ]

    # Run
    frame = sample_proposals(proposals, [0, 1], encoders, np.random.default_rng(2),
                             anchors=[anchor], table='t')

    # Assert
    assert frame['age'].iloc[:200].between(18, 29).all()
    # A range outside the anchor's cell falls back to the cell.
    assert frame['age'].iloc[200:].between(18, 64).all()


def test_sample_proposals__datetimes_and_missing_values():
    # Setup
    encoders = _encoders()
    proposals = [Proposal({'when': Range('2024-01-10', '2024-01-12'), 'city': None,
                           'age': None}, count=50)]

    # Run
    frame = sample_proposals(proposals, [0], encoders, np.random.default_rng(3))

    # Assert
    assert set(frame['when']) <= {'2024-01-10', '2024-01-11'}
    assert frame['city'].isna().all()
    assert frame['age'].isna().all()


def test_sample_proposals__unset_columns_completed_from_the_column():
    # Setup
    encoders = _encoders()

    # Run
    frame = sample_proposals([Proposal({}, count=300)], [0], encoders,
                             np.random.default_rng(4))

    # Assert
    assert set(frame['city']) == {'Paris', 'Lyon'}
    assert frame['age'].between(0, 100).all()
    assert frame['price'].between(0, 100).all()


def test_sample_proposals__same_seed_same_records():
    # Setup
    encoders = _encoders()
    proposals = [Proposal({'age': Range(0, 100), 'price': Range(0, 100)}, count=100)]

    # Run
    first = sample_proposals(proposals, [0], encoders, np.random.default_rng(5))
    second = sample_proposals(proposals, [0], encoders, np.random.default_rng(5))

    # Assert
    pd.testing.assert_frame_equal(first, second)


def test_sample_households__children_and_units():
    # Setup
    parent = {'city': ColumnEncoder('city', 'categorical', categories=['Paris', 'Lyon'])}
    child = {'age': ColumnEncoder('age', 'numerical', edges=np.array([0, 18, 100.0]),
                                  integer=True)}
    proposals = [
        Proposal({'city': 'Paris'}, count=2,
                 children=[{'age': Range(30, 40)}, {'age': Range(0, 10)}]),
        Proposal({'city': 'Lyon'}, count=1, children=[{'age': Range(80, 90)}]),
    ]

    # Run
    parents, children = sample_households(proposals, [0, 1], parent, child,
                                          np.random.default_rng(0), first_unit=10)

    # Assert
    assert parents['city'].tolist() == ['Paris', 'Paris', 'Lyon']
    assert parents[UNIT_COLUMN].tolist() == [10, 11, 12]
    assert children[UNIT_COLUMN].tolist() == [10, 10, 11, 11, 12]
    ages = children['age'].tolist()
    assert 30 <= ages[0] < 40 and 0 <= ages[1] < 10 and 80 <= ages[4] < 90
    assert children[PROPOSAL_ID_COLUMN].tolist() == [0, 0, 0, 0, 1]


def test_validity_checker__counts_per_rule_and_metadata_constraint():
    # Setup
    encoders = _encoders()
    rules = [RuleSpec('adult in Paris', "city == 'Paris' -> age >= 18"),
             RuleSpec('cheap', 'price < 50')]
    checker = ValidityChecker('t', encoders, rules)
    frame = pd.DataFrame({
        'age': [10, 30, 17, 150, 20.5],
        'price': [5.0, 60.0, 5.0, 5.0, 5.0],
        'city': ['Paris', 'Lyon', 'Lyon', 'Paris', 'Rome'],
        'size': [1, 2, 3, 4, 1],
    })

    # Run
    result = checker.check(frame)
    table = RejectionTable()
    table.add_result('t', result)
    rejections = table.to_frame().set_index('rule')['rejected'].to_dict()

    # Assert
    assert result.valid.tolist() == [False, False, True, False, False]
    assert rejections['adult in Paris'] == 1
    assert rejections['cheap'] == 1
    assert rejections['age within [min, max]'] == 1
    assert rejections['age is integer'] == 1
    assert rejections['city in categories'] == 1
    assert rejections['size in values'] == 1
    assert table.to_frame()['checked'].eq(5).all()


def test_validity_checker__bad_rule_type_rejects_batch_without_crashing():
    # Setup
    encoders = _encoders()
    checker = ValidityChecker('t', encoders, [RuleSpec('weird', "city > 5")])
    frame = pd.DataFrame({'city': ['Paris', 'Lyon']})

    # Run
    result = checker.check(frame)

    # Assert
    assert result.valid.tolist() == [False, False]
    assert 'weird' in result.errors


@pytest.mark.parametrize('rows', [0, 1])
def test_rejection_table__state_round_trip(rows):
    # Setup
    table = RejectionTable()
    for _ in range(rows):
        table.add('t', 'r', 10, 3)

    # Run
    restored = RejectionTable.from_state(table.to_state())

    # Assert
    pd.testing.assert_frame_equal(restored.to_frame(), table.to_frame())


def test_validity_checker__given_codes_and_discrete_columns_together():
    # Setup
    encoders = _encoders()
    checker = ValidityChecker('t', encoders, [])
    frame = pd.DataFrame({'size': [1, 5, 2, 3], 'city': ['Paris', 'Rome', 'Lyon', 'Lyon']})
    codes = {'city': encoders['city'].encode(frame['city'])}

    # Run
    result = checker.check(frame, codes)

    # Assert
    assert result.failures['size in values'].tolist() == [False, True, False, False]
    assert result.failures['city in categories'].tolist() == [False, True, False, False]
    assert result.valid.tolist() == [True, False, True, True]
