"""Tests of the aggregation operator, against a pandas reference."""

import numpy as np
import pandas as pd
import pytest
from engine_specs import SINGLE_METADATA, single_spec

from sdv_llmsynthor.core import encoding as encoding_module
from sdv_llmsynthor.core.aggregate import (
    aggregate_frame,
    build_contributions,
    combination_ids,
    compute_derived_columns,
)
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.spec.model import DerivedColumnSpec


def _random_frame(rng, num_rows):
    frame = pd.DataFrame({
        'age': rng.uniform(10, 95, num_rows).round(1),
        'gender': rng.choice(['Male', 'Female', 'Other'], num_rows),
        'city': rng.choice(['Paris', 'Lyon', 'Nice', None], num_rows),
        'price': rng.uniform(-10, 1100, num_rows),
    })
    frame.loc[rng.random(num_rows) < 0.05, 'age'] = np.nan
    return frame


def _reference_counts(frame, statistic):
    """Count rows per listed cell with pandas only (pd.cut + value matching)."""
    masks = []
    for cell_key in statistic.cell_keys:
        mask = pd.Series(True, index=frame.index)
        for column, part in zip(statistic.columns, cell_key):
            if isinstance(part, tuple):
                low, high = float(part[0]), float(part[1])
                encoder = statistic.encoders[statistic.columns.index(column)]
                last = high == encoder.edges[-1]
                values = frame[column]
                mask &= (values >= low) & ((values <= high) if last else (values < high))
            else:
                mask &= frame[column] == part
        masks.append(int(mask.sum()))
    return np.array(masks, dtype=float)


@pytest.mark.parametrize('seed', range(5))
def test_aggregate_frame__matches_pandas_reference(seed):
    # Setup
    rng = np.random.default_rng(seed)
    encoding = compile_table(single_spec(), SINGLE_METADATA, 'shop')
    frame = _random_frame(rng, int(rng.integers(1, 3000)))

    # Run
    counts = aggregate_frame(encoding, frame)

    # Assert
    for statistic in encoding.statistics:
        np.testing.assert_array_equal(counts.get(statistic), _reference_counts(frame, statistic))
        assert counts.rest(statistic) == len(frame) - counts.get(statistic).sum()


def test_aggregate_frame__sparse_path_matches_dense(monkeypatch):
    # Setup
    rng = np.random.default_rng(7)
    frame = _random_frame(rng, 2000)
    dense = compile_table(single_spec(), SINGLE_METADATA, 'shop')
    monkeypatch.setattr(encoding_module, 'DENSE_SPACE_LIMIT', 0)
    sparse = compile_table(single_spec(), SINGLE_METADATA, 'shop')

    # Run
    dense_counts = aggregate_frame(dense, frame)
    sparse_counts = aggregate_frame(sparse, frame)

    # Assert
    assert not sparse.statistics[0].is_dense
    for first, second in zip(dense.statistics, sparse.statistics):
        np.testing.assert_array_equal(dense_counts.get(first), sparse_counts.get(second))


def test_aggregate_frame__empty_frame():
    # Setup
    encoding = compile_table(single_spec(), SINGLE_METADATA, 'shop')

    # Run
    counts = aggregate_frame(encoding, _random_frame(np.random.default_rng(0), 0))

    # Assert
    assert all(counts.get(s).sum() == 0 for s in encoding.statistics)


def test_compute_derived_columns__every_function():
    # Setup
    children = pd.DataFrame({'age': [10, 40, 70, 30, np.nan], 'income': [0, 100, 50, 20, 5]})
    parents = np.array([0, 0, 0, 2, 2])
    derived = {
        'n': DerivedColumnSpec('n', 'p', 'count'),
        'adults': DerivedColumnSpec('adults', 'p', 'count', predicate='age >= 18'),
        'any_old': DerivedColumnSpec('any_old', 'p', 'any', predicate='age >= 65'),
        'all_adult': DerivedColumnSpec('all_adult', 'p', 'all', predicate='age >= 18'),
        'total': DerivedColumnSpec('total', 'p', 'sum', column='income'),
        'oldest': DerivedColumnSpec('oldest', 'p', 'max', column='age'),
        'youngest': DerivedColumnSpec('youngest', 'p', 'min', column='age'),
        'mean_income': DerivedColumnSpec('mean_income', 'p', 'mean', column='income'),
    }

    # Run
    values = compute_derived_columns(derived, children, parents, 3)

    # Assert
    assert values['n'].tolist() == [3, 0, 2]
    assert values['adults'].tolist() == [2, 0, 1]
    assert values['any_old'].tolist() == [True, False, False]
    assert values['all_adult'].tolist() == [False, True, False]
    assert values['total'].tolist() == [150, 0, 25]
    np.testing.assert_array_equal(values['oldest'], [70, np.nan, 30])
    np.testing.assert_array_equal(values['youngest'], [10, np.nan, 30])
    np.testing.assert_allclose(values['mean_income'], [50, np.nan, 12.5])


def test_build_contributions__rest_cells_and_units():
    # Setup
    encoding = compile_table(single_spec(), SINGLE_METADATA, 'shop')
    statistic = encoding.get_statistic('gender')
    cells = np.array([0, 1, -1, 1])
    units = np.array([0, 0, 1, 2])

    # Run
    matrix, offsets = build_contributions([(statistic, cells, units)], 3)

    # Assert
    assert offsets == [(statistic, 0)]
    np.testing.assert_array_equal(matrix.toarray(), [[1, 1, 0], [0, 0, 1], [0, 1, 0]])


def test_combination_ids__numbers_distinct_rows_in_order_of_first_appearance():
    """Equal rows share an id, ids follow first appearance, and ``first`` points at them."""
    # Setup
    a = np.array([0, 1, 0, 2, 1, -1])
    b = np.array([5, 5, 5, 7, 5, 5])

    # Run
    ids, first = combination_ids([a, b])

    # Assert
    assert ids.tolist() == [0, 1, 0, 2, 1, 3]
    assert first.tolist() == [0, 1, 3, 5]


def test_combination_ids__many_wide_columns_do_not_overflow():
    """Columns whose spans multiply past 64 bits still give exact ids (no hashing)."""
    # Setup
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1_000_000, size=(50, 8))
    rows = base[rng.integers(0, 50, size=2000)]

    # Run
    ids, first = combination_ids([rows[:, j] for j in range(8)])

    # Assert
    _, expected = np.unique(rows, axis=0, return_inverse=True)
    assert len(first) == len(np.unique(rows, axis=0))
    assert np.array_equal(rows[first[ids]], rows)
    pairs = set(zip(ids.tolist(), expected.ravel().tolist()))
    assert len(pairs) == len(first)
