"""Tests of the pure helpers of the multi-table benchmark (``evaluation/multitable.py``)."""

import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def multitable():
    sys.path.insert(0, str(REPOSITORY_ROOT))
    try:
        yield importlib.import_module('evaluation.multitable')
    finally:
        sys.path.remove(str(REPOSITORY_ROOT))


def _metadata():
    return {
        'tables': {
            'users': {'primary_key': 'uid', 'columns': {'uid': {'sdtype': 'id'}}},
            'sessions': {'primary_key': 'sid', 'columns': {
                'sid': {'sdtype': 'id'}, 'uid': {'sdtype': 'id'}}},
            'clicks': {'primary_key': 'cid', 'columns': {
                'cid': {'sdtype': 'id'}, 'sid': {'sdtype': 'id'}}},
        },
        'relationships': [
            {'parent_table_name': 'users', 'parent_primary_key': 'uid',
             'child_table_name': 'sessions', 'child_foreign_key': 'uid'},
            {'parent_table_name': 'sessions', 'parent_primary_key': 'sid',
             'child_table_name': 'clicks', 'child_foreign_key': 'sid'},
        ],
    }


def _data():
    return {
        'users': pd.DataFrame({'uid': [1, 2, 3, 4]}),
        'sessions': pd.DataFrame({'sid': [10, 11, 12], 'uid': [1, 1, 3]}),
        'clicks': pd.DataFrame({'cid': [100, 101], 'sid': [10, 12]}),
    }


def test_child_counts__zero_for_parents_without_children(multitable):
    """Every parent gets its number of children, in the parent's order, zeros included."""
    # Setup
    data = _data()

    # Run
    counts = multitable.child_counts(data['users'], 'uid', data['sessions'], 'uid')

    # Assert
    assert counts.tolist() == [2, 0, 1, 0]
    assert counts.index.tolist() == [1, 2, 3, 4]


def test_count_tvd__by_hand(multitable):
    """Histograms {0: .5, 1: .25, 2: .25} and {0: .25, 1: .25, 3: .5} are 0.5 apart."""
    # Run
    tvd = multitable.count_tvd([2, 0, 1, 0], [0, 1, 3, 3])

    # Assert
    assert tvd == pytest.approx(0.5)
    assert multitable.count_tvd([1, 2, 2], [2, 1, 2]) == pytest.approx(0.0)
    assert multitable.count_tvd([0, 0], [5, 5]) == pytest.approx(1.0)


def test_cardinality_shape__mean_zero_share_p90(multitable):
    """Mean, share of zeros, 90th percentile and maximum of the counts."""
    # Run
    shape = multitable.cardinality_shape([2, 0, 1, 0])

    # Assert
    assert shape['mean'] == pytest.approx(0.75)
    assert shape['zero_share'] == pytest.approx(0.5)
    assert shape['p90'] == pytest.approx(1.7)
    assert shape['max'] == 2
    assert shape['parents'] == 4


def test_key_validity__valid_tree(multitable):
    """Unique primary keys and resolving foreign keys make the tree valid."""
    # Run
    result = multitable.key_validity(_data(), _metadata())

    # Assert
    assert result['valid']
    assert result['foreign_keys'] == {'users>sessions': 1.0, 'sessions>clicks': 1.0}
    assert result['primary_keys']['users'] == {'unique': True, 'null': 0}


def test_key_validity__duplicate_key_and_orphan(multitable):
    """A duplicated primary key and a foreign key without a parent are both reported."""
    # Setup
    data = _data()
    data['sessions'] = pd.DataFrame({'sid': [10, 10, 12], 'uid': [1, 9, 3]})

    # Run
    result = multitable.key_validity(data, _metadata())

    # Assert
    assert not result['valid']
    assert result['primary_keys']['sessions']['unique'] is False
    assert result['foreign_keys']['users>sessions'] == pytest.approx(2 / 3)
    assert result['foreign_keys']['sessions>clicks'] == 1.0


def test_cut_tree_and_schema_depth(multitable):
    """Dropping the leaf makes a two-level tree; dropping the root removes its foreign key."""
    # Setup
    data, metadata = _data(), _metadata()

    # Run
    without_leaf = multitable.cut_tree(data, metadata, drop={'clicks'})
    without_root = multitable.cut_tree(data, metadata, drop={'users'})

    # Assert
    assert multitable.schema_depth(metadata) == 3
    assert multitable.schema_depth(without_leaf[1]) == 2
    assert set(without_leaf[0]) == {'users', 'sessions'}
    assert list(without_root[0]['sessions'].columns) == ['sid']
    assert 'uid' not in without_root[1]['tables']['sessions']['columns']
    assert without_root[1]['relationships'] == [metadata['relationships'][1]]
