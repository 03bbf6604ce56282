"""Unit tests for ``sdv_llmsynthor.core.calibration``."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

from sdv_llmsynthor.core.calibration import (
    CALIBRATION_METHODS,
    CalibrationResult,
    calibrate_pool,
    calibration_lower_bound,
    calibration_objective,
)
from sdv_llmsynthor.errors import CalibrationError

CARDINALITIES = (2, 3, 4, 5)
STATISTICS = ((0,), (1,), (2,), (3,), (0, 1), (2, 3), (1, 2, 3))


def _contributions(records, cardinalities=CARDINALITIES, statistics=STATISTICS):
    """One row per record, a 1 in the cell of every statistic it falls in."""
    rows, columns = [], []
    offset = 0
    for statistic in statistics:
        cell = np.zeros(len(records), dtype=np.int64)
        for column in statistic:
            cell = cell * cardinalities[column] + records[:, column]

        rows.append(np.arange(len(records)))
        columns.append(offset + cell)
        offset += int(np.prod([cardinalities[column] for column in statistic]))

    rows, columns = np.concatenate(rows), np.concatenate(columns)
    return sp.csr_matrix((np.ones(rows.size), (rows, columns)), shape=(len(records), offset))


def _records(rng, num_records, skew=0.0):
    """Records whose first category of every column is over-represented by ``skew``."""
    columns = []
    for cardinality in CARDINALITIES:
        probabilities = np.full(cardinality, (1 - skew) / cardinality)
        probabilities[0] += skew
        columns.append(rng.choice(cardinality, size=num_records, p=probabilities))

    return np.column_stack(columns)


def _single_table_case(seed=0, num_units=400, num_distractors=150):
    """A pool holding a target set of records (a perfect subset) plus skewed distractors."""
    rng = np.random.default_rng(seed)
    target_records = _records(rng, num_units)
    pool = np.vstack([target_records, _records(rng, num_distractors, skew=0.6)])
    pool = pool[rng.permutation(len(pool))]
    contributions = _contributions(pool)
    targets = np.asarray(_contributions(target_records).sum(axis=0)).ravel()
    cell_weights = np.full(contributions.shape[1], 1 / (2 * num_units))
    return contributions, targets, cell_weights, num_units


def _household_case(seed=0, num_households=200, num_distractors=60):
    """Households of 1-4 persons: size cells count households, age cells count persons."""
    rng = np.random.default_rng(seed)

    def households(count, old_share):
        sizes = rng.integers(1, 5, size=count)
        ages = [rng.choice(3, size=size, p=[0.5 - old_share / 2, 0.5 - old_share / 2, old_share])
                for size in sizes]
        return sizes, ages

    def contributions(sizes, ages):
        dense = np.zeros((len(sizes), 4 + 3))
        dense[np.arange(len(sizes)), sizes - 1] = 1
        for row, person_ages in enumerate(ages):
            dense[row, 4:] = np.bincount(person_ages, minlength=3)

        return dense

    target = contributions(*households(num_households, old_share=0.2))
    distractors = contributions(*households(num_distractors, old_share=0.9))
    pool = np.vstack([target, distractors])[rng.permutation(num_households + num_distractors)]
    targets = target.sum(axis=0)
    cell_weights = np.r_[
        np.full(4, 1 / (2 * targets[:4].sum())), np.full(3, 1 / (2 * targets[4:].sum()))
    ]
    return sp.csr_matrix(pool), targets, cell_weights, num_households


@pytest.mark.parametrize('method', CALIBRATION_METHODS)
def test_calibrate_pool__exact_count_distinct_in_range(method):
    """Every method selects exactly ``num_units`` distinct, valid, sorted indices."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case()

    # Run
    result = calibrate_pool(
        contributions, targets, cell_weights, num_units, method=method, max_seconds=None
    )

    # Assert
    assert isinstance(result, CalibrationResult)
    assert result.indices.dtype == np.int64
    assert len(result.indices) == num_units
    assert len(np.unique(result.indices)) == num_units
    assert result.indices.min() >= 0
    assert result.indices.max() < contributions.shape[0]
    assert np.all(np.diff(result.indices) > 0)
    assert result.method == ('lp_swaps' if method == 'auto' else method)


@pytest.mark.parametrize('method', ['lp_swaps', 'raking_swaps', 'random_swaps'])
def test_calibrate_pool__swaps_never_increase_the_objective(method):
    """Refinement lowers the objective, and the reported values are the true objective."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=1)

    # Run
    result = calibrate_pool(
        contributions, targets, cell_weights, num_units, method=method, max_seconds=None
    )

    # Assert
    assert result.objective_after <= result.objective_before
    assert result.swaps > 0
    assert result.objective_after < result.objective_before
    assert result.stopped_by == 'converged'
    assert result.objective_after == pytest.approx(
        calibration_objective(contributions, targets, cell_weights, result.indices)
    )


def test_calibrate_pool__finds_a_near_perfect_subset():
    """The pool holds the target set plus distractors; the selection recovers nearly all of it."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=2)
    random_result = calibrate_pool(
        contributions, targets, cell_weights, num_units, method='random', max_seconds=None
    )

    # Run
    result = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)

    # Assert
    # The objective is the sum of the 7 statistics' TVDs; random selection is near 1.
    assert random_result.objective_after > 0.5
    assert result.objective_after <= 0.03
    selected = np.asarray(contributions[result.indices].sum(axis=0)).ravel()
    assert np.abs(selected - targets).max() <= 2


def test_calibrate_pool__duplicates_only_when_allowed():
    """A selection larger than the pool needs ``allow_duplicates``; then indices repeat."""
    # Setup
    contributions, targets, cell_weights, _ = _single_table_case(num_units=100, num_distractors=20)
    num_units = 150
    targets = targets * 1.5
    message = (
        'The pool holds 120 units but 150 were requested; without duplicates a selection cannot '
        'be larger than the pool. Pass allow_duplicates=True or generate a larger pool.'
    )

    # Run
    result = calibrate_pool(
        contributions, targets, cell_weights, num_units, allow_duplicates=True, max_seconds=None
    )

    # Assert
    assert len(result.indices) == num_units
    assert len(np.unique(result.indices)) < num_units
    assert result.indices.max() < contributions.shape[0]
    assert result.objective_after <= result.objective_before
    with pytest.raises(CalibrationError, match=re.escape(message)):
        calibrate_pool(contributions, targets, cell_weights, num_units)


def test_calibrate_pool__pool_too_small_is_a_value_error():
    """The error for an undersized pool is a ``ValueError`` that says what to do."""
    # Setup
    contributions = sp.csr_matrix(np.ones((950, 3)))
    message = (
        'The pool holds 950 units but 1000 were requested; without duplicates a selection '
        'cannot be larger than the pool. Pass allow_duplicates=True or generate a larger pool.'
    )

    # Run and Assert
    with pytest.raises(ValueError, match=re.escape(message)):
        calibrate_pool(contributions, np.full(3, 1000.0), np.ones(3), 1000)


@pytest.mark.parametrize('method', ['lp_swaps', 'raking_swaps', 'random_swaps', 'random'])
def test_calibrate_pool__deterministic_for_a_seed(method):
    """The same seed gives the same selection; another seed may give another."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=3)

    # Run
    first = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=7, method=method, max_seconds=None
    )
    second = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=7, method=method, max_seconds=None
    )
    generator = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=np.random.default_rng(7),
        method=method, max_seconds=None,
    )
    other = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=8, method=method, max_seconds=None
    )

    # Assert
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.indices, generator.indices)
    assert first.objective_after == second.objective_after
    if method == 'random':
        assert not np.array_equal(first.indices, other.indices)


def test_calibrate_pool__deviations_within_tolerance_do_not_drive_swaps():
    """With every deviation of the random start inside its tolerance, nothing is swapped."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=4)
    start = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=5, method='random', max_seconds=None
    )
    selected = np.asarray(contributions[start.indices].sum(axis=0)).ravel()
    deviations = np.abs(selected - targets)

    # Run
    tolerated = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=5, tolerances=deviations,
        method='random_swaps', max_seconds=None,
    )
    untolerated = calibrate_pool(
        contributions, targets, cell_weights, num_units, seed=5, method='random_swaps',
        max_seconds=None,
    )

    # Assert
    assert tolerated.objective_before == 0
    assert tolerated.swaps == 0
    np.testing.assert_array_equal(tolerated.indices, start.indices)
    assert untolerated.swaps > 0


def test_calibrate_pool__tolerant_cells_are_left_to_the_others():
    """Cells of a tolerant statistic end within tolerance; the strict ones get the swaps."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=6)
    tolerances = np.zeros(contributions.shape[1])
    tolerances[:2] = 30.0  # the first statistic (2 cells) may be off by 30 records per cell

    # Run
    result = calibrate_pool(
        contributions, targets, cell_weights, num_units, tolerances=tolerances, max_seconds=None
    )

    # Assert
    selected = np.asarray(contributions[result.indices].sum(axis=0)).ravel()
    assert np.all(np.abs(selected[:2] - targets[:2]) <= 30.0)
    assert result.objective_after == pytest.approx(
        calibration_objective(contributions, targets, cell_weights, result.indices, tolerances)
    )
    assert result.objective_after <= 0.05


def test_calibrate_pool__households_count_their_persons():
    """Person-level cells receive each household's person counts; a near-perfect subset exists."""
    # Setup
    contributions, targets, cell_weights, num_households = _household_case()
    random_result = calibrate_pool(
        contributions, targets, cell_weights, num_households, method='random', max_seconds=None
    )

    # Run
    result = calibrate_pool(contributions, targets, cell_weights, num_households, max_seconds=None)

    # Assert
    assert len(result.indices) == num_households
    assert len(np.unique(result.indices)) == num_households
    selected = np.asarray(contributions[result.indices].sum(axis=0)).ravel()
    assert selected[:4].sum() == num_households
    assert selected[4:].sum() == pytest.approx(targets[4:].sum(), abs=3)
    assert result.objective_after < 0.1 * random_result.objective_after


def test_calibrate_pool__fractional_contributions():
    """Contributions with many distinct values (not small counts) are handled exactly too."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=7)
    rng = np.random.default_rng(0)
    contributions = contributions.copy()
    contributions.data = contributions.data * rng.uniform(0.5, 1.5, contributions.nnz)

    # Run
    result = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)

    # Assert
    assert len(np.unique(result.indices)) == num_units
    assert result.swaps > 0
    assert result.objective_after < result.objective_before
    assert result.objective_after == pytest.approx(
        calibration_objective(contributions, targets, cell_weights, result.indices)
    )


def test_calibrate_pool__zero_weight_cells_are_ignored():
    """Cells with weight 0 neither count in the objective nor steer the selection."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=8)
    cell_weights = np.zeros_like(cell_weights)

    # Run
    result = calibrate_pool(
        contributions, targets * 10, cell_weights, num_units, method='random_swaps',
        max_seconds=None,
    )

    # Assert
    assert result.objective_before == 0
    assert result.objective_after == 0
    assert result.swaps == 0


def test_calibrate_pool__edge_sizes():
    """Zero units gives an empty selection; the whole pool gives every unit."""
    # Setup
    contributions, targets, cell_weights, _ = _single_table_case(num_units=30, num_distractors=5)

    # Run
    empty = calibrate_pool(contributions, targets, cell_weights, 0)
    everything = calibrate_pool(contributions, targets, cell_weights, 35)

    # Assert
    assert empty.indices.size == 0
    np.testing.assert_array_equal(everything.indices, np.arange(35))


def test_calibrate_pool__dense_input_is_accepted_and_not_modified():
    """A dense array works like its sparse form and the caller's arrays stay untouched."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=9)
    dense = contributions.toarray()
    dense_copy, targets_copy = dense.copy(), targets.copy()

    # Run
    from_dense = calibrate_pool(dense, targets, cell_weights, num_units, max_seconds=None)
    from_sparse = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)

    # Assert
    np.testing.assert_array_equal(from_dense.indices, from_sparse.indices)
    np.testing.assert_array_equal(dense, dense_copy)
    np.testing.assert_array_equal(targets, targets_copy)


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'method': 'ipf'}, "The 'method' parameter must be one of ['auto', 'lp_swaps', 'lp', "
                            "'raking_swaps', 'raking', 'random_swaps', 'random']; got 'ipf' "
                            'instead.'),
        ({'targets': np.zeros(3)}, "The 'targets' parameter must have shape (4,), one value per "
                                   "cell of 'contributions'; got shape (3,)."),
        ({'cell_weights': np.array([1.0, -1.0, 1.0, 1.0])},
         "The 'cell_weights' parameter must be >= 0; got -1.0 at cell 1."),
        ({'num_units': 2.5}, "The 'num_units' parameter must be an integer; got 2.5 instead."),
        ({'tolerances': np.array([0.0, np.nan, 0.0, 0.0])},
         "The 'tolerances' parameter must hold finite numbers only."),
    ],
)
def test_calibrate_pool__invalid_input(kwargs, message):
    """Invalid arguments raise a ``CalibrationError`` naming the parameter."""
    # Setup
    arguments = {
        'contributions': sp.csr_matrix(np.eye(4)),
        'targets': np.ones(4),
        'cell_weights': np.ones(4),
        'num_units': 2,
    }
    arguments.update(kwargs)

    # Run and Assert
    with pytest.raises(CalibrationError, match=re.escape(message)):
        calibrate_pool(**arguments)


def test_calibration_objective__weighted_l1_outside_tolerance():
    """The objective is ``sum w * max(0, |t - selected| - tol)``, repeats counting twice."""
    # Setup
    contributions = sp.csr_matrix(np.array([[1, 0, 2], [0, 1, 1], [1, 1, 0]], dtype=float))
    targets = np.array([3.0, 0.0, 2.0])
    cell_weights = np.array([1.0, 2.0, 0.5])
    tolerances = np.array([0.0, 0.5, 0.0])

    # Run
    objective = calibration_objective(
        contributions, targets, cell_weights, np.array([0, 2, 2]), tolerances
    )

    # Assert
    # selected = [3, 2, 2]; deviations [0, 2, 0]; cell 1 costs 2 * (2 - 0.5) = 3.
    assert objective == pytest.approx(3.0)


def test_calibration_lower_bound__bounds_the_achieved_objective():
    """The dual bound is non-negative and never above what a selection achieves."""
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=10)
    targets = targets + np.random.default_rng(0).integers(-3, 4, size=targets.size)

    # Run
    bound = calibration_lower_bound(contributions, targets, cell_weights, num_units, iterations=500)
    result = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)

    # Assert
    assert 0 < bound <= result.objective_after + 1e-9


def test_calibrate_pool__scale_of_the_weights_does_not_matter():
    """Multiplying every cell weight by a constant, however small, gives the same selection.

    The factor is a power of two so that the scaled arithmetic is exact and ties break alike.
    """
    # Setup
    contributions, targets, cell_weights, num_units = _single_table_case(seed=11)

    # Run
    unit = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)
    tiny = calibrate_pool(
        contributions, targets, cell_weights * 2.0**-40, num_units, max_seconds=None
    )

    # Assert
    assert unit.swaps > 0
    np.testing.assert_array_equal(unit.indices, tiny.indices)
    assert tiny.objective_after == pytest.approx(unit.objective_after * 2.0**-40)


def _duplicated_case(seed=0, copies=40, num_units=1000):
    """A pool where every record appears many times (as a large single-table pool does)."""
    rng = np.random.default_rng(seed)
    distinct = np.vstack([_records(rng, 60), _records(rng, 40, skew=0.6)])
    pool = np.repeat(distinct, rng.integers(1, copies, size=len(distinct)), axis=0)
    pool = pool[rng.permutation(len(pool))]
    reference = pool[rng.choice(len(pool), size=num_units, replace=False)]
    contributions = _contributions(pool)
    targets = np.asarray(_contributions(reference).sum(axis=0)).ravel()
    cell_weights = np.full(contributions.shape[1], 1 / (2 * num_units))
    return contributions, targets, cell_weights, num_units, pool


def test_calibrate_pool__solves_over_the_distinct_rows():
    """Identical units are solved as one type; the selection still holds distinct units."""
    # Setup
    contributions, targets, cell_weights, num_units, pool = _duplicated_case()
    num_distinct = len(np.unique(pool, axis=0))

    # Run
    result = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)

    # Assert
    assert result.num_types == num_distinct
    assert len(result.indices) == num_units
    assert len(np.unique(result.indices)) == num_units
    assert result.objective_after == pytest.approx(
        calibration_objective(contributions, targets, cell_weights, result.indices)
    )
    assert result.objective_after <= result.objective_before


@pytest.mark.parametrize('method', CALIBRATION_METHODS)
def test_calibrate_pool__never_takes_more_of_a_type_than_the_pool_has(method):
    """A type's count is capped by its multiplicity, for every method."""
    # Setup: one record type is wanted far more often than the pool holds it.
    rng = np.random.default_rng(3)
    pool = np.vstack([np.zeros((5, 4), dtype=np.int64), _records(rng, 300)])
    contributions = _contributions(pool)
    wanted = np.vstack([np.zeros((60, 4), dtype=np.int64), _records(rng, 40)])
    targets = np.asarray(_contributions(wanted).sum(axis=0)).ravel()
    cell_weights = np.full(contributions.shape[1], 1 / 200)

    # Run
    result = calibrate_pool(contributions, targets, cell_weights, 100, method=method,
                            max_seconds=None, seed=1)

    # Assert
    assert len(np.unique(result.indices)) == 100
    assert np.isin(np.arange(5), result.indices).sum() <= 5


def test_calibrate_pool__duplicates_spread_over_a_type_before_repeating():
    """With duplicates allowed, a type's draws go to its units in turn before any repeats."""
    # Setup: two types, 3 units of the first; the targets want 7 of it and 1 of the other.
    dense = np.array([[1, 0]] * 3 + [[0, 1]] * 4, dtype=float)
    targets = np.array([7.0, 1.0])

    # Run
    result = calibrate_pool(dense, targets, np.ones(2), 8, allow_duplicates=True,
                            max_seconds=None)

    # Assert
    counts = np.bincount(result.indices, minlength=7)
    assert result.objective_after == 0
    assert sorted(counts[:3].tolist()) == [2, 2, 3]
    assert counts[3:].sum() == 1


def test_calibrate_pool__types_do_not_depend_on_entry_order():
    """Rows built with their entries in another order are still the same type."""
    # Setup
    rows = np.array([0, 0, 1, 1, 2, 2])
    columns = np.array([0, 2, 2, 0, 1, 2])
    contributions = sp.coo_matrix((np.ones(6), (rows, columns)), shape=(3, 3))
    targets = np.array([1.0, 0.0, 1.0])

    # Run
    result = calibrate_pool(contributions, targets, np.ones(3), 1, max_seconds=None)

    # Assert
    assert result.num_types == 2
    assert result.objective_after == 0
    assert result.indices[0] in (0, 1)


def test_calibrate_pool__given_unit_types_solve_the_same_problem():
    """One row per type plus every unit's type solves what the per-unit matrix does."""
    # Setup
    contributions, targets, cell_weights, num_units, pool = _duplicated_case(seed=2)
    _, first, of_unit = np.unique(pool, axis=0, return_index=True, return_inverse=True)

    # Run
    full = calibrate_pool(contributions, targets, cell_weights, num_units, max_seconds=None)
    typed = calibrate_pool(contributions[first], targets, cell_weights, num_units,
                           max_seconds=None, unit_types=of_unit.ravel())

    # Assert
    assert typed.num_types == full.num_types
    # The types come in another order, so the random parts differ: both must end near the
    # best possible, well below where they started.
    bound = calibration_lower_bound(contributions, targets, cell_weights, num_units)
    for result in (full, typed):
        assert result.objective_after <= bound + 0.01
    assert len(np.unique(typed.indices)) == num_units
    assert typed.objective_after == pytest.approx(
        calibration_objective(contributions, targets, cell_weights, typed.indices)
    )


def test_calibrate_pool__unit_types_must_index_the_rows():
    """Types outside the rows of the matrix are a clear error."""
    with pytest.raises(CalibrationError, match="'unit_types' parameter must index the 2 rows"):
        calibrate_pool(np.eye(2), np.ones(2), np.ones(2), 1, unit_types=np.array([0, 2]))
