"""Calibration: select exactly the requested number of units from a larger pool.

The synthesis loop builds a pool of candidate *units* somewhat larger than requested. A unit is
one record of a single table, or one household with all its persons. Every unit contributes
non-negative counts to the cells of the target statistics (a record adds 1 to the one cell of
each statistic it falls in; a household adds 1 to its household-level cells and its persons'
counts to the person-level cells). :func:`calibrate_pool` picks exactly ``num_units`` units
whose summed contributions are as close as possible to the targets.

Objective. With ``r = targets - selected contributions`` (positive = under-represented)::

    objective = sum_c cell_weights[c] * max(0, |r[c]| - tolerances[c])

a weighted L1 distance outside the tolerances. L1 rather than squared error because it is what
the macro-fidelity report shows: with ``cell_weights[c] = weight_s / (2 * total_s)`` for the
cells of statistic ``s`` the objective is exactly the weighted sum of the statistics' total
variation distances (TVD). A squared error would favour spreading deviations over many cells
and give the large cells more say, improving a number nobody reports. The tolerance is a dead
zone: deviations within it cost nothing, so such cells never drive a swap.

Algorithm (the default, ``'lp_swaps'``, chosen by measurement against random selection, bounded
raking and swaps from a random start: see ``evaluation/calibration_bench.py`` and
``evaluation/results/calibration_bench.md``):

1. **Linear relaxation.** Inclusion probabilities ``0 <= x <= 1`` with ``sum(x) = num_units``
   that minimise the objective are approximated by the diagonally preconditioned primal-dual
   hybrid gradient method (Chambolle-Pock, as in PDLP): only sparse matrix-vector products,
   100 to 300 iterations depending on the pool's size. Unlike raking, which fits every cell
   exactly by maximum entropy and struggles when the pool cannot fit them all, it optimises the
   objective itself, tolerances included.
2. **Systematic sampling** in random order turns the probabilities into exactly
   ``num_units`` distinct units.
3. **Greedy pairwise swaps.** For every unit the exact change of the objective for adding it
   (if unselected) and for removing it (if selected) is kept up to date: after a swap only the
   cells it changed can alter these scores, and only where a residual moves near a kink of the
   loss, so the update goes through those cells' columns. Each step swaps the best unit to
   remove for the best unit to add while that strictly lowers the objective. When it no longer
   does, a batch search pairs the best few hundred candidates of each kind through the cells
   they share (a swap of two units in the same cell leaves that cell alone, which can make it
   improving although neither move is on its own) and applies the pairs that check out exactly.
   Refinement stops when a batch finds nothing, or at ``max_seconds``.

Bounded raking (iterative proportional updating cell by cell, capped at 1) is kept as the
``'raking'`` start for comparison.

**Unit types.** Units whose contribution rows are identical are interchangeable: the objective
only sees how many of them are selected. Every method therefore runs on the distinct rows (the
pool's *types*) with integer counts ``0 <= k_t <= m_t`` (``m_t`` the type's multiplicity; no
upper bound with duplicates allowed), which is the same problem, and then picks ``k_t`` of each
type's units at random. A single-table pool of a million records holds a few thousand types,
so the relaxation and the swaps cost what a pool of a few thousand units would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sdv_llmsynthor.errors import CalibrationError

__all__ = [
    'CALIBRATION_METHODS',
    'CalibrationResult',
    'calibrate_pool',
    'calibration_lower_bound',
    'calibration_objective',
]

CALIBRATION_METHODS = (
    'auto', 'lp_swaps', 'lp', 'raking_swaps', 'raking', 'random_swaps', 'random'
)
"""Accepted values of ``method``; ``'auto'`` resolves to ``'lp_swaps'``."""

_AUTO_METHOD = 'lp_swaps'
_EPSILON = 1e-9  # relative to the smallest positive cell weight
# Dense vector products are written ``(a * b).sum()``: ``a @ b`` goes through a multithreaded
# BLAS whose spinning threads slow everything down tenfold when the cores are shared.

# Linear relaxation (PDHG).
_PDHG_PRIMAL_WEIGHT = 1.0
# Iterations: as many as fit in _PDHG_WORK stored entries processed, within the bounds (about
# 170 for a 120,000 x 20-entry pool, where more iterations barely change the final objective;
# the most for small pools, where they are cheap and do).
_PDHG_WORK = 4e8
_PDHG_MIN_ITERATIONS = 100
_PDHG_MAX_ITERATIONS = 300
_PDHG_CHECK_EVERY = 25
_PDHG_MIN_IMPROVEMENT = 0.01
_PDHG_BUDGET_SHARE = 0.5  # of max_seconds; the rest is left to the swaps

# Bounded raking (comparison start).
_MAX_RAKING_SWEEPS = 30
_RAKING_MIN_IMPROVEMENT = 1e-3

# Swap refinement.
_MAX_VALUE_LEVELS = 16
_BATCH_CANDIDATES = 256
_PARTNERS = 8
_MAX_CONSECUTIVE_REJECTIONS = 64
_RECOMPUTE_EVERY = 4096


@dataclass
class CalibrationResult:
    """What :func:`calibrate_pool` selected and how well it fits.

    Args:
        indices (numpy.ndarray):
            ``int64`` row indices into the pool, exactly ``num_units`` of them, sorted
            ascending. An index repeats only when ``allow_duplicates=True``.
        objective_before (float):
            The objective of the starting selection, before any swap: the random draw for
            ``'random'`` and ``'random_swaps'``, the systematic sample of the relaxation's or
            the raking's probabilities otherwise.
        objective_after (float):
            The objective of the returned selection (never above ``objective_before``).
        iterations (int):
            Relaxation iterations (or raking sweeps) plus swap rounds that ran.
        seconds (float):
            Wall time of the call.
        method (str):
            The method that ran (``'auto'`` is resolved to the concrete method).
        swaps (int):
            How many pairwise swaps were applied.
        stopped_by (str):
            Why refinement stopped: ``'converged'`` (no improving swap found), ``'max_seconds'``,
            ``'max_swaps'``, or ``'no_refinement'`` for the methods without swaps.
        num_types (int):
            How many distinct contribution rows (unit types) the pool holds: the size of the
            problem the methods actually solved.
    """

    indices: np.ndarray
    objective_before: float
    objective_after: float
    iterations: int
    seconds: float
    method: str
    swaps: int = 0
    stopped_by: str = 'no_refinement'
    num_types: int = 0


def _loss(residuals, tolerances):
    """Per-cell loss ``max(0, |r| - tol)`` (unweighted)."""
    return np.maximum(np.abs(residuals) - tolerances, 0.0)


def _as_csr(contributions) -> sp.csr_matrix:
    if sp.issparse(contributions):
        matrix = sp.csr_matrix(contributions, dtype=np.float64, copy=True)
    else:
        array = np.asarray(contributions, dtype=np.float64)
        if array.ndim != 2:
            raise CalibrationError(
                "The 'contributions' parameter must be a 2-D (n_units, n_cells) matrix; "
                f'got an array with {array.ndim} dimension(s).'
            )

        matrix = sp.csr_matrix(array)

    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _as_cell_vector(values, name: str, num_cells: int, allow_negative: bool) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (num_cells,):
        raise CalibrationError(
            f"The '{name}' parameter must have shape ({num_cells},), one value per cell of "
            f"'contributions'; got shape {array.shape}."
        )

    if not np.all(np.isfinite(array)):
        raise CalibrationError(f"The '{name}' parameter must hold finite numbers only.")

    if not allow_negative and np.any(array < 0):
        raise CalibrationError(
            f"The '{name}' parameter must be >= 0; got {float(array.min())} at cell "
            f'{int(np.argmin(array))}.'
        )

    return array


def _validate_inputs(contributions, targets, cell_weights, tolerances, num_units, method):
    if method not in CALIBRATION_METHODS:
        raise CalibrationError(
            f"The 'method' parameter must be one of {list(CALIBRATION_METHODS)}; "
            f'got {method!r} instead.'
        )

    if isinstance(num_units, bool) or not isinstance(num_units, (int, np.integer)):
        raise CalibrationError(
            f"The 'num_units' parameter must be an integer; got {num_units!r} instead."
        )

    if num_units < 0:
        raise CalibrationError(f"The 'num_units' parameter must be >= 0; got {num_units}.")

    matrix = _as_csr(contributions)
    if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or matrix.data.min() < 0):
        raise CalibrationError("The 'contributions' matrix must hold finite, non-negative counts.")

    num_cells = matrix.shape[1]
    targets = _as_cell_vector(targets, 'targets', num_cells, allow_negative=True)
    cell_weights = _as_cell_vector(cell_weights, 'cell_weights', num_cells, allow_negative=False)
    if tolerances is None:
        tolerances = np.zeros(num_cells)
    else:
        tolerances = _as_cell_vector(tolerances, 'tolerances', num_cells, allow_negative=False)

    return matrix, targets, cell_weights, tolerances, int(num_units)


def calibration_objective(
    contributions: sp.spmatrix | np.ndarray,
    targets: np.ndarray,
    cell_weights: np.ndarray,
    indices: np.ndarray,
    tolerances: np.ndarray | None = None,
) -> float:
    """Compute the calibration objective of a selection of units.

    Args:
        contributions (scipy.sparse.csr_matrix or numpy.ndarray):
            ``(n_units, n_cells)`` non-negative counts each unit adds to each cell.
        targets (numpy.ndarray):
            ``(n_cells,)`` target counts for the selection.
        cell_weights (numpy.ndarray):
            ``(n_cells,)`` non-negative weight of each cell.
        indices (numpy.ndarray):
            Row indices of the selected units; a repeated index counts as many times.
        tolerances (numpy.ndarray or None):
            ``(n_cells,)`` deviations (in counts) that cost nothing. Defaults to zero.

    Returns:
        float:
            ``sum_c cell_weights[c] * max(0, |targets[c] - selected[c]| - tolerances[c])``.
    """
    matrix, targets, cell_weights, tolerances, _ = _validate_inputs(
        contributions, targets, cell_weights, tolerances, 0, 'auto'
    )
    counts = np.bincount(np.asarray(indices, dtype=np.int64), minlength=matrix.shape[0])
    residuals = targets - matrix.T @ counts.astype(np.float64)
    return float((cell_weights * _loss(residuals, tolerances)).sum())


def _project_capped_simplex(values, step, total, upper, shift, out):
    """Project onto ``{x: 0 <= x <= upper, sum(x) = total}`` in the ``1/step``-weighted norm.

    The projection is ``clip(values - step * shift, 0, upper)`` for the ``shift`` that gives
    the right sum. The sum is piecewise linear and decreasing in the shift, so Newton steps
    from the previous shift find it in two or three evaluations; bisection guards them.
    ``step`` is a scalar or an array like ``values``; the projection is written to ``out``.

    Returns:
        float:
            The shift.
    """
    uniform = np.ndim(step) == 0
    low, high = -np.inf, np.inf
    for _ in range(200):
        np.multiply(step, -shift, out=out)
        out += values
        np.clip(out, 0.0, upper, out=out)
        excess = out.sum() - total
        if abs(excess) <= 1e-9 * max(total, 1.0):
            break

        if excess > 0:
            low = shift
        else:
            high = shift

        free = (out > 0) & (out < upper)
        slope = step * np.count_nonzero(free) if uniform else step[free].sum()
        candidate = shift + excess / slope if slope > 0 else np.nan
        if low < candidate < high:
            shift = candidate
        else:
            if not np.isfinite(low):
                low = float(np.min((values - np.minimum(upper, total)) / step))
            if not np.isfinite(high):
                high = float(np.max(values / step))

            shift = 0.5 * (low + high)

    return shift


def _lp_relaxation(matrix, targets, cell_weights, tolerances, num_units, cap, deadline,
                   max_iterations=None, stop_early=True):
    """Approximately solve the linear relaxation of the selection problem.

    Minimises ``sum_c w_c * max(0, |(A^T x)_c - t_c| - tol_c)`` over ``0 <= x <= cap`` and
    ``sum(x) = num_units`` with the diagonally preconditioned primal-dual hybrid gradient
    method. The dual variables are cell prices bounded by the cell weights.

    Returns:
        tuple[numpy.ndarray, numpy.ndarray, int]:
            Inclusion probabilities (the checked iterate with the lowest relaxed objective),
            the last cell prices (in units of the largest cell weight) and the iterations run.
    """
    if max_iterations is None:
        affordable = int(_PDHG_WORK / max(matrix.nnz, 1))
        max_iterations = min(max(affordable, _PDHG_MIN_ITERATIONS), _PDHG_MAX_ITERATIONS)

    num_pool, num_cells = matrix.shape
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    column_sums = np.asarray(matrix.sum(axis=0)).ravel()
    # Cell prices live in [-w, w]; scaling them to at most 1 balances primal and dual steps.
    scale = float(cell_weights.max()) if num_cells and cell_weights.max() > 0 else 1.0
    bounds = cell_weights / scale
    primal_step = _PDHG_PRIMAL_WEIGHT / np.where(row_sums > 0, row_sums, 1.0)
    if num_pool and np.all(primal_step == primal_step[0]):
        primal_step = float(primal_step[0])  # every unit adds the same total (a single table)

    dual_step = np.zeros(num_cells)
    np.divide(1.0 / _PDHG_PRIMAL_WEIGHT, column_sums, out=dual_step, where=column_sums > 0)
    upper = np.inf if cap is None else _cap_array(cap, num_pool)
    transposed = matrix.T  # a CSC view: its products are cheaper than a CSR copy's

    if cap is None:
        primal = np.full(num_pool, num_units / num_pool)
    else:
        primal = upper * (num_units / upper.sum())
    updated = np.empty(num_pool)
    gradient = np.empty(num_pool)
    prices = np.zeros(num_cells)
    current = transposed @ primal
    best, best_objective = primal.copy(), np.inf
    shift = 0.0
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007
        np.multiply(matrix @ prices, primal_step, out=gradient)
        np.subtract(primal, gradient, out=gradient)
        shift = _project_capped_simplex(gradient, primal_step, num_units, upper, shift, updated)
        updated_current = transposed @ updated
        moved = prices + dual_step * (2 * updated_current - current - targets)
        # Proximal step of tol * |price| (a soft threshold), then the box [-w, w].
        moved = np.sign(moved) * np.maximum(np.abs(moved) - dual_step * tolerances, 0.0)
        prices = np.clip(moved, -bounds, bounds)
        primal, updated = updated, primal
        current = updated_current
        if iterations % _PDHG_CHECK_EVERY == 0 or iterations == max_iterations:
            objective = float((cell_weights * _loss(current - targets, tolerances)).sum())
            improved = objective < best_objective * (1 - _PDHG_MIN_IMPROVEMENT)
            if objective < best_objective:
                best[:] = primal
                best_objective = objective

            if stop_early and not improved:
                break

            if deadline is not None and time.perf_counter() > deadline:
                break

    return best, prices, iterations


def calibration_lower_bound(
    contributions: sp.spmatrix | np.ndarray,
    targets: np.ndarray,
    cell_weights: np.ndarray,
    num_units: int,
    tolerances: np.ndarray | None = None,
    allow_duplicates: bool = False,
    iterations: int = 2000,
) -> float:
    """Compute a lower bound on the objective any selection of ``num_units`` units can reach.

    Runs the linear relaxation's solver for ``iterations`` iterations and evaluates the dual
    function at its cell prices; by weak duality no selection (not even a fractional one) can
    score below it. More iterations give a tighter bound. Meant for benchmarks and reports
    ("the selection is within x% of the best possible"), not for the synthesis loop.

    Args:
        contributions (scipy.sparse.csr_matrix or numpy.ndarray):
            ``(n_units, n_cells)`` non-negative counts each unit adds to each cell.
        targets (numpy.ndarray):
            ``(n_cells,)`` target counts for the selection.
        cell_weights (numpy.ndarray):
            ``(n_cells,)`` non-negative weight of each cell.
        num_units (int):
            How many units a selection holds.
        tolerances (numpy.ndarray or None):
            ``(n_cells,)`` deviations that cost nothing. Defaults to zero.
        allow_duplicates (bool):
            Whether a unit may be selected more than once.
        iterations (int):
            Solver iterations.

    Returns:
        float:
            The bound (0 when none better is found).
    """
    matrix, targets, cell_weights, tolerances, num_units = _validate_inputs(
        contributions, targets, cell_weights, tolerances, num_units, 'auto'
    )
    if num_units == 0 or matrix.shape[0] == 0 or not matrix.shape[1]:
        return 0.0

    cap = None if allow_duplicates else 1
    _, prices, _ = _lp_relaxation(
        matrix, targets, cell_weights, tolerances, num_units, cap, None,
        max_iterations=iterations, stop_early=False,
    )
    scale = float(cell_weights.max()) if cell_weights.max() > 0 else 1.0
    prices = prices * scale
    unit_prices = matrix @ prices
    if allow_duplicates:
        best_selection = num_units * unit_prices.min()
    else:
        best_selection = np.partition(unit_prices, num_units - 1)[:num_units].sum()

    bound = best_selection - (targets * prices).sum() - (tolerances * np.abs(prices)).sum()
    return max(float(bound), 0.0)


def _cap_array(cap, size):
    """The per-unit upper bounds as a float array (``cap`` is a scalar or an array)."""
    return np.broadcast_to(np.asarray(cap, dtype=np.float64), (size,))


def _scale_with_cap(weights, total, cap):
    """Rescale non-negative weights to sum to ``total`` with every weight at most its cap."""
    weights = np.maximum(weights, 0.0)
    num_units = weights.size
    if cap is None:
        weight_sum = weights.sum()
        if weight_sum <= 0:
            return np.full(num_units, total / num_units)

        return weights * (total / weight_sum)

    upper = _cap_array(cap, num_units)
    positive = weights > 0
    room = upper[positive].sum()
    if room <= total:
        # Every unit the raking kept is certain; the rest share what is left by their caps.
        scaled = np.where(positive, upper, 0.0)
        spare = upper[~positive].sum()
        if spare > 0 and total > room:
            scaled[~positive] = upper[~positive] * ((total - room) / spare)

        return scaled

    capped = np.zeros(num_units, dtype=bool)
    scale = 1.0
    for _ in range(num_units):
        scale = (total - upper[capped].sum()) / weights[~capped].sum()
        new_capped = capped | (weights * scale >= upper)
        if new_capped.sum() == capped.sum():
            break

        capped = new_capped

    return np.where(capped, upper, np.minimum(weights * scale, upper))


def _rake(matrix, targets, cell_weights, tolerances, num_units, cap, deadline):
    """Bounded iterative proportional updating of unit weights towards the targets.

    Returns:
        tuple[numpy.ndarray, int]:
            Inclusion probabilities (sum ``num_units``, each at most ``cap``) and sweeps run.
    """
    columns = matrix.tocsc()
    num_pool = matrix.shape[0]
    upper_bounds = None if cap is None else _cap_array(cap, num_pool)
    if upper_bounds is None:
        weights = np.full(num_pool, num_units / num_pool)
    else:
        weights = upper_bounds * (num_units / upper_bounds.sum())
    lower = np.maximum(targets - tolerances, 0.0)
    upper = np.maximum(targets + tolerances, 0.0)
    indptr, row_indices, values = columns.indptr, columns.indices, columns.data
    active_cells = np.flatnonzero((cell_weights > 0) & (np.diff(indptr) > 0))

    best, best_objective = weights, np.inf
    sweeps = 0
    for sweeps in range(1, _MAX_RAKING_SWEEPS + 1):  # noqa: B007
        for cell in active_cells.tolist():
            start, stop = indptr[cell], indptr[cell + 1]
            rows = row_indices[start:stop]
            current = (weights[rows] * values[start:stop]).sum()
            if current <= 0:
                continue

            if current < lower[cell]:
                factor = lower[cell] / current
            elif current > upper[cell]:
                factor = upper[cell] / current
            else:
                continue

            updated = weights[rows] * factor
            if upper_bounds is not None:
                np.minimum(updated, upper_bounds[rows], out=updated)

            weights[rows] = updated

        weights = _scale_with_cap(weights, num_units, cap)
        expected = matrix.T @ weights
        objective = float((cell_weights * _loss(targets - expected, tolerances)).sum())
        improved = objective < best_objective * (1 - _RAKING_MIN_IMPROVEMENT)
        if objective < best_objective:
            best, best_objective = weights.copy(), objective

        if not improved or (deadline is not None and time.perf_counter() > deadline):
            break

    return best, sweeps


def _systematic_sample(probabilities, num_units, cap, rng):
    """Draw exactly ``num_units`` units (counts per unit) by systematic sampling in random order."""
    num_pool = probabilities.size
    order = rng.permutation(num_pool)
    cumulative = np.cumsum(probabilities[order])
    cumulative *= num_units / cumulative[-1]
    points = rng.random() + np.arange(num_units)
    positions = np.minimum(np.searchsorted(cumulative, points, side='right'), num_pool - 1)
    counts = np.bincount(order[positions], minlength=num_pool).astype(np.int64)
    if cap is None:
        return counts

    upper = np.asarray(cap, dtype=np.int64)
    excess = int((counts - upper).clip(min=0).sum())
    while excess > 0:
        # Rounding in the cumulative sums can hit a unit beyond its cap; give the extra draws
        # to the most probable units with room left, one each per pass.
        counts = np.minimum(counts, upper)
        free = np.flatnonzero(counts < upper)
        ranked = free[np.argsort(-probabilities[free], kind='stable')][:excess]
        counts[ranked] += 1
        excess -= ranked.size

    return counts


def _random_counts(multiplicities, num_units, allow_duplicates, rng):
    """A uniform random draw of ``num_units`` units, as counts per type."""
    if allow_duplicates:
        return rng.multinomial(num_units, multiplicities / multiplicities.sum()).astype(np.int64)

    return rng.multivariate_hypergeometric(multiplicities, num_units).astype(np.int64)


@dataclass
class _UnitTypes:
    """The pool's distinct contribution rows: ``matrix[first]`` with ``counts`` units each."""

    matrix: sp.csr_matrix
    multiplicities: np.ndarray  # int64, units per type
    of_unit: np.ndarray  # int64, the type of every unit


def _unit_types(matrix):
    """Group the units of a canonical CSR matrix by identical rows.

    Two independent random projections of every row stand for it: identical rows give
    bit-identical projections, so the first (with the row's number of entries) is hashed into
    groups and the second must then agree within every group. Distinct rows of small counts
    agreeing on both would take two exact coincidences of random real weights; should the
    check ever fail, every unit stays its own type (no compression, same result).
    """
    num_pool, num_cells = matrix.shape
    projections = np.random.default_rng(0x5EED).random((num_cells, 2)) + 0.5
    hashes = np.asarray(matrix @ projections)
    row_nnz = np.diff(matrix.indptr)
    keys = np.ascontiguousarray(hashes[:, 0]).view(np.int64) ^ (row_nnz << 40)
    of_unit, uniques = pd.factorize(keys)
    of_unit = of_unit.astype(np.int64)
    num_types = len(uniques)
    first = np.empty(num_types, dtype=np.int64)
    first[of_unit[::-1]] = np.arange(num_pool - 1, -1, -1, dtype=np.int64)
    check = hashes[:, 1]
    if not np.array_equal(check, check[first][of_unit]):
        return _UnitTypes(matrix, np.ones(num_pool, dtype=np.int64),
                          np.arange(num_pool, dtype=np.int64))

    multiplicities = np.bincount(of_unit, minlength=num_types).astype(np.int64)
    return _UnitTypes(matrix[first], multiplicities, of_unit)


def _given_types(matrix, unit_types):
    """The caller's unit types (one row of ``matrix`` per type), checked."""
    of_unit = np.asarray(unit_types)
    if of_unit.ndim != 1 or (of_unit.size and not np.issubdtype(of_unit.dtype, np.integer)):
        raise CalibrationError("The 'unit_types' parameter must be a 1-D array of integers.")

    of_unit = of_unit.astype(np.int64, copy=False)
    if of_unit.size and (of_unit.min() < 0 or of_unit.max() >= matrix.shape[0]):
        raise CalibrationError(
            f"The 'unit_types' parameter must index the {matrix.shape[0]} rows of "
            "'contributions' (one per type)."
        )

    multiplicities = np.bincount(of_unit, minlength=matrix.shape[0]).astype(np.int64)
    return _UnitTypes(matrix, multiplicities, of_unit)


def _expand_types(type_counts, types, rng):
    """Counts per unit that select ``type_counts[t]`` units of every type ``t`` at random.

    With ``k`` draws from a type of ``m`` units every unit gets ``k // m`` and ``k % m`` units
    chosen at random one more, so no unit repeats unless ``k > m`` (duplicates allowed).
    """
    multiplicities = types.multiplicities
    num_pool = types.of_unit.size
    shuffled = rng.permutation(num_pool)
    grouped = shuffled[np.argsort(types.of_unit[shuffled], kind='stable')]
    starts = np.cumsum(multiplicities) - multiplicities
    position = np.arange(num_pool) - np.repeat(starts, multiplicities)
    base = np.repeat(type_counts // np.maximum(multiplicities, 1), multiplicities)
    extra = position < np.repeat(type_counts % np.maximum(multiplicities, 1), multiplicities)
    counts = np.empty(num_pool, dtype=np.int64)
    counts[grouped] = base + extra
    return counts


def _indicator(matrix, entries):
    """A 0/1 matrix of the shape of ``matrix`` with ones at the selected stored entries."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[entries]
    return sp.csr_matrix((np.ones(rows.size), (rows, matrix.indices[entries])), shape=matrix.shape)


class _SwapRefiner:
    """Greedy pairwise swap refinement of a selection (counts per unit) against the targets.

    Keeps, for every unit, the exact objective change of adding one copy (``add_score``) and
    of removing one (``remove_score``) at the current residuals, ``inf`` where the move is not
    allowed. After a swap only the cells it changed can alter these scores, and only where a
    residual moves within reach of the kinks of the loss, so the scores are updated through
    those cells' columns instead of being recomputed.
    """

    def __init__(self, matrix, targets, cell_weights, tolerances, counts, cap):
        self.matrix = matrix
        self.indptr = matrix.indptr
        self.cells = matrix.indices
        self.values = matrix.data
        self.cell_weights = cell_weights
        self.tolerances = tolerances
        self.targets = targets
        self.counts = counts
        self.cap = cap
        self.swaps = 0
        self.rounds = 0
        columns = matrix.tocsc()
        # Contributions are small counts in practice (1 for a record, a few persons for a
        # household). Then a score changes by one number per (cell, distinct value), applied
        # to that value's units in the cell, and a full recomputation is one sparse product
        # per distinct value. Otherwise every stored entry is handled on its own.
        levels = np.unique(self.values)
        if levels.size <= _MAX_VALUE_LEVELS:
            indicators = [_indicator(matrix, self.values == level) for level in levels]
            self.levels = [float(level) for level in levels]
            self.level_rows = indicators
            self.level_columns = [indicator.tocsc() for indicator in indicators]
        else:
            self.levels = None
            self.columns = columns
            self.row_of_entry = np.repeat(
                np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)
            )

        # A residual that stays beyond +-reach leaves every unit's score in that cell unchanged.
        column_max = np.zeros(matrix.shape[1])
        nonempty = np.diff(columns.indptr) > 0
        if nonempty.any():
            column_max[nonempty] = np.maximum.reduceat(columns.data, columns.indptr[:-1][nonempty])

        self.reach = column_max + tolerances
        # Improvements are multiples of the cell weights; the threshold scales with them.
        positive_weights = cell_weights[cell_weights > 0]
        self.epsilon = _EPSILON * (positive_weights.min() if positive_weights.size else 1.0)
        self._changes = np.zeros(matrix.shape[1])
        self._marks = np.zeros(matrix.shape[1], dtype=bool)
        self.recompute()

    def _unit_cap(self, unit):
        return self.cap if np.ndim(self.cap) == 0 else self.cap[unit]

    def recompute(self):
        """Recompute residuals and scores from the counts (drops accumulated rounding)."""
        self.residuals = self.targets - self.matrix.T @ self.counts.astype(np.float64)
        add, remove = self._single_deltas()
        if self.cap is None:
            self.add_score = add
        else:
            self.add_score = np.where(self.counts < self.cap, add, np.inf)

        self.remove_score = np.where(self.counts > 0, remove, np.inf)

    def objective(self):
        return float((self.cell_weights * _loss(self.residuals, self.tolerances)).sum())

    def _single_deltas(self):
        """Exact objective change of adding (or removing) one copy of each unit alone."""
        residuals, tolerances, weights = self.residuals, self.tolerances, self.cell_weights
        base = _loss(residuals, tolerances)
        num_pool = self.matrix.shape[0]
        if self.levels is not None:
            add = np.zeros(num_pool)
            remove = np.zeros(num_pool)
            for level, indicator in zip(self.levels, self.level_rows):
                add += indicator @ (weights * (_loss(residuals - level, tolerances) - base))
                remove += indicator @ (weights * (_loss(residuals + level, tolerances) - base))

            return add, remove

        cells, values = self.cells, self.values
        entry_weights = weights[cells]
        entry_residuals = residuals[cells]
        entry_tolerances = tolerances[cells]
        entry_base = base[cells]
        add = np.bincount(
            self.row_of_entry,
            weights=entry_weights
            * (_loss(entry_residuals - values, entry_tolerances) - entry_base),
            minlength=num_pool,
        )
        remove = np.bincount(
            self.row_of_entry,
            weights=entry_weights
            * (_loss(entry_residuals + values, entry_tolerances) - entry_base),
            minlength=num_pool,
        )
        return add, remove

    def _unit_delta(self, unit, sign):
        """Exact objective change of adding (``sign=-1``) or removing (``+1``) one unit."""
        start, stop = self.indptr[unit], self.indptr[unit + 1]
        cells = self.cells[start:stop]
        old = self.residuals[cells]
        new = old + sign * self.values[start:stop]
        tolerances = self.tolerances[cells]
        return float(
            (self.cell_weights[cells] * (_loss(new, tolerances) - _loss(old, tolerances))).sum()
        )

    def _pair_delta(self, unit_out, unit_in):
        """Exact objective change of swapping ``unit_out`` for ``unit_in`` at the residuals."""
        indptr = self.indptr
        out_start, out_stop = indptr[unit_out], indptr[unit_out + 1]
        in_start, in_stop = indptr[unit_in], indptr[unit_in + 1]
        cells_out = self.cells[out_start:out_stop]
        cells_in = self.cells[in_start:in_stop]
        # Rows hold each cell once (duplicates were summed), so fancy assignment is safe; the
        # marks keep cells that both units touch from being counted twice.
        changes, marks = self._changes, self._marks
        changes[cells_out] = self.values[out_start:out_stop]
        changes[cells_in] -= self.values[in_start:in_stop]
        marks[cells_out] = True
        cells = np.concatenate((cells_out, cells_in[~marks[cells_in]]))
        marks[cells_out] = False
        old = self.residuals[cells]
        new = old + changes[cells]
        changes[cells] = 0.0
        tolerances = self.tolerances[cells]
        delta = (self.cell_weights[cells] * (_loss(new, tolerances) - _loss(old, tolerances))).sum()
        return float(delta), cells, new

    def _update_scores_by_level(self, cells, old_residuals, new_residuals):
        add_score, remove_score = self.add_score, self.remove_score
        for cell, old, new in zip(cells, old_residuals, new_residuals):
            tolerance = self.tolerances[cell]
            weight = self.cell_weights[cell]
            old_loss = max(abs(old) - tolerance, 0.0)
            new_loss = max(abs(new) - tolerance, 0.0)
            for level, columns in zip(self.levels, self.level_columns):
                start, stop = columns.indptr[cell], columns.indptr[cell + 1]
                if start == stop:
                    continue

                add_change = weight * (
                    max(abs(new - level) - tolerance, 0.0) - new_loss
                    - max(abs(old - level) - tolerance, 0.0) + old_loss
                )
                remove_change = weight * (
                    max(abs(new + level) - tolerance, 0.0) - new_loss
                    - max(abs(old + level) - tolerance, 0.0) + old_loss
                )
                rows = columns.indices[start:stop]
                if add_change:
                    add_score[rows] += add_change

                if remove_change:
                    remove_score[rows] += remove_change

    def _update_scores_by_entry(self, cells, old_residuals, new_residuals):
        columns = self.columns
        for cell, old, new in zip(cells, old_residuals, new_residuals):
            start, stop = columns.indptr[cell], columns.indptr[cell + 1]
            rows = columns.indices[start:stop]
            values = columns.data[start:stop]
            tolerance = self.tolerances[cell]
            weight = self.cell_weights[cell]
            old_loss = max(abs(old) - tolerance, 0.0)
            new_loss = max(abs(new) - tolerance, 0.0)
            self.add_score[rows] += weight * (
                _loss(new - values, tolerance) - new_loss
                - _loss(old - values, tolerance) + old_loss
            )
            self.remove_score[rows] += weight * (
                _loss(new + values, tolerance) - new_loss
                - _loss(old + values, tolerance) + old_loss
            )

    def _apply(self, unit_out, unit_in, cells, new_residuals):
        """Apply a swap and update the scores of every unit it affects."""
        old_residuals = self.residuals[cells]
        self.residuals[cells] = new_residuals
        self.counts[unit_out] -= 1
        self.counts[unit_in] += 1
        self.swaps += 1

        reach = self.reach[cells]
        moved = ~(
            ((old_residuals >= reach) & (new_residuals >= reach))
            | ((old_residuals <= -reach) & (new_residuals <= -reach))
        )
        update = (
            self._update_scores_by_level if self.levels is not None
            else self._update_scores_by_entry
        )
        update(cells[moved].tolist(), old_residuals[moved].tolist(), new_residuals[moved].tolist())

        for unit in (unit_out, unit_in):
            can_add = self.cap is None or self.counts[unit] < self._unit_cap(unit)
            self.add_score[unit] = self._unit_delta(unit, -1) if can_add else np.inf
            can_remove = self.counts[unit] > 0
            self.remove_score[unit] = self._unit_delta(unit, 1) if can_remove else np.inf

    def greedy_step(self):
        """Swap the best unit to remove for the best unit to add, if that improves."""
        unit_out = int(np.argmin(self.remove_score))
        unit_in = int(np.argmin(self.add_score))
        if unit_out == unit_in:
            return False

        if self.remove_score[unit_out] + self.add_score[unit_in] >= -self.epsilon:
            return False

        delta, cells, new_residuals = self._pair_delta(unit_out, unit_in)
        if delta >= -self.epsilon:
            return False

        self._apply(unit_out, unit_in, cells, new_residuals)
        return True

    @staticmethod
    def _best(scores, size):
        """Up to ``size`` units with the lowest finite scores, best first."""
        if scores.size > size:
            candidates = np.argpartition(scores, size - 1)[:size]
        else:
            candidates = np.arange(scores.size)

        candidates = candidates[np.isfinite(scores[candidates])]
        return candidates[np.argsort(scores[candidates], kind='stable')]

    def _curvature(self):
        """Per cell, what adding and removing a unit there cost together beyond doing nothing.

        A swap of two units that share the cell leaves it untouched and saves exactly this.
        """
        residuals, tolerances = self.residuals, self.tolerances
        return self.cell_weights * (
            _loss(residuals - 1, tolerances)
            + _loss(residuals + 1, tolerances)
            - 2 * _loss(residuals, tolerances)
        )

    def pair_batch(self, deadline, max_swaps=None):
        """Search improving swaps among the best candidates, counting the cells they share.

        Returns:
            tuple[int, bool]:
                Swaps applied, and whether the deadline was hit.
        """
        adds = self._best(self.add_score, _BATCH_CANDIDATES)
        removes = self._best(self.remove_score, _BATCH_CANDIDATES)
        if adds.size == 0 or removes.size == 0:
            return 0, False

        pair = self.remove_score[removes][:, None] + self.add_score[adds][None, :]
        curvature = self._curvature()
        bent = curvature > 0
        if bent.any():
            weighted = self.matrix[removes][:, bent] @ sp.diags(curvature[bent])
            pair -= (weighted @ self.matrix[adds][:, bent].T).toarray()

        # Candidate pairs: each remove's and each add's few best partners (the globally best
        # pairs would all share the single best remove or add), best first.
        partners = min(_PARTNERS, len(adds))
        rows = np.repeat(np.arange(len(removes)), partners)
        columns = np.argpartition(pair, partners - 1, axis=1)[:, :partners].ravel()
        partners = min(_PARTNERS, len(removes))
        best_removes = np.argpartition(pair, partners - 1, axis=0)[:partners].ravel()
        rows = np.concatenate((rows, best_removes))
        columns = np.concatenate((columns, np.tile(np.arange(len(adds)), partners)))
        flat = np.unique(rows * len(adds) + columns)
        flat = flat[pair.ravel()[flat] < -self.epsilon]
        flat = flat[np.argsort(pair.ravel()[flat], kind='stable')]
        out_positions, in_positions = np.divmod(flat, len(adds))

        used_out = np.zeros(len(removes), dtype=bool)
        used_in = np.zeros(len(adds), dtype=bool)
        applied = 0
        rejections = 0
        checks = 0
        for out_position, in_position in zip(out_positions.tolist(), in_positions.tolist()):
            if used_out[out_position] or used_in[in_position]:
                continue

            if max_swaps is not None and self.swaps >= max_swaps:
                break

            unit_out, unit_in = int(removes[out_position]), int(adds[in_position])
            if unit_out == unit_in:
                continue

            checks += 1
            if checks % 64 == 0 and deadline is not None and time.perf_counter() > deadline:
                return applied, True

            delta, cells, new_residuals = self._pair_delta(unit_out, unit_in)
            if delta < -self.epsilon:
                self._apply(unit_out, unit_in, cells, new_residuals)
                used_out[out_position] = True
                used_in[in_position] = True
                applied += 1
                rejections = 0
            else:
                # Accepted swaps make the remaining estimates stale; after a run of rejections
                # the greedy steps and a fresh batch find pairs sooner than the rest of the list.
                rejections += 1
                if rejections >= _MAX_CONSECUTIVE_REJECTIONS:
                    break

        return applied, False

    def run(self, deadline, max_swaps=None):
        """Swap until no improving swap is found, or the swap cap or time runs out.

        Returns why it stopped: ``'converged'``, ``'max_swaps'`` or ``'max_seconds'``.
        """
        since_recompute = 0
        while True:
            self.rounds += 1
            steps = 0
            while True:
                if max_swaps is not None and self.swaps >= max_swaps:
                    return 'max_swaps'
                if not self.greedy_step():
                    break
                steps += 1
                since_recompute += 1
                if steps % 32 == 0 and deadline is not None and time.perf_counter() > deadline:
                    return 'max_seconds'

                if since_recompute >= _RECOMPUTE_EVERY:
                    self.recompute()
                    since_recompute = 0

            if deadline is not None and time.perf_counter() > deadline:
                return 'max_seconds'

            if max_swaps is not None and self.swaps >= max_swaps:
                return 'max_swaps'

            applied, out_of_time = self.pair_batch(deadline, max_swaps)
            if out_of_time:
                return 'max_seconds'

            if applied == 0:
                return 'converged'


def _resolve_rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed

    return np.random.default_rng(seed)


def calibrate_pool(
    contributions: sp.csr_matrix,
    targets: np.ndarray,
    cell_weights: np.ndarray,
    num_units: int,
    seed: int | np.random.Generator = 0,
    allow_duplicates: bool = False,
    tolerances: np.ndarray | None = None,
    max_seconds: float | None = 30.0,
    method: str = 'auto',
    max_swaps: int | None = None,
    unit_types: np.ndarray | None = None,
) -> CalibrationResult:
    """Select exactly ``num_units`` units of a pool that best match the target cell counts.

    Minimises ``sum_c cell_weights[c] * max(0, |targets[c] - selected[c]| - tolerances[c])``,
    a weighted sum of TVDs when the weights are ``weight / (2 * statistic total)``. See the
    module docstring for the algorithm.

    The result is deterministic for a given seed unless ``max_seconds`` cuts the work short
    (``stopped_by == 'max_seconds'``); pass ``max_seconds=None`` for results that cannot depend
    on the speed of the machine (the refinement always terminates: every swap strictly lowers
    the objective), and ``max_swaps`` to bound the work deterministically.

    Args:
        contributions (scipy.sparse.csr_matrix):
            ``(n_units, n_cells)`` non-negative counts each unit adds to each cell (any scipy
            sparse matrix or dense array is accepted and converted; it is not modified). With
            ``unit_types``, one row per type instead: ``(n_types, n_cells)``.
        targets (numpy.ndarray):
            ``(n_cells,)`` target counts for the selection, already scaled to ``num_units``.
        cell_weights (numpy.ndarray):
            ``(n_cells,)`` non-negative weight of each cell (e.g. statistic weight divided by
            twice the statistic's total). Cells with weight 0 are ignored.
        num_units (int):
            How many units to select.
        seed (int or numpy.random.Generator):
            Seed or generator for the random parts (sampling order, random start).
        allow_duplicates (bool):
            Whether a unit may be selected more than once. Defaults to ``False``: units are
            never duplicated to fake a fit unless the caller allows it.
        tolerances (numpy.ndarray or None):
            ``(n_cells,)`` non-negative deviations, in counts, that cost nothing. Defaults to 0.
        max_seconds (float or None):
            Wall-time budget of the whole call, ``None`` for no limit. The relaxation (or the
            raking) gets at most half of it; the swaps stop when it runs out.
        method (str):
            ``'auto'`` (the default, ``'lp_swaps'``), ``'lp'`` (relaxation and systematic
            sampling, no swaps), ``'raking_swaps'``, ``'raking'`` (bounded raking instead of the
            relaxation), ``'random_swaps'`` (swaps from a uniform random draw) or ``'random'``
            (the uniform random draw: the baseline).
        max_swaps (int or None):
            At most this many swaps in the refinement: a deterministic work cap, unlike
            ``max_seconds``. ``None`` (the default) for no cap.
        unit_types (numpy.ndarray or None):
            ``(n_units,)`` the type of every unit, an index into the rows of ``contributions``,
            when the caller already knows which units contribute identically (a single table:
            the units' cells). Saves building and grouping the per-unit matrix; the result is
            the same. ``None`` (the default): the types are found from ``contributions``.

    Returns:
        CalibrationResult:
            The selected indices (sorted ascending, ``num_units`` of them) and diagnostics.

    Raises:
        CalibrationError:
            (a ``ValueError``) if the inputs are inconsistent, or ``num_units`` exceeds the pool
            while duplicates are not allowed.
    """
    started = time.perf_counter()
    matrix, targets, cell_weights, tolerances, num_units = _validate_inputs(
        contributions, targets, cell_weights, tolerances, num_units, method
    )
    given_types = None
    if unit_types is not None:
        given_types = _given_types(matrix, unit_types)
    num_pool = matrix.shape[0] if given_types is None else given_types.of_unit.size
    if num_units > num_pool and not allow_duplicates:
        raise CalibrationError(
            f'The pool holds {num_pool} units but {num_units} were requested; without '
            'duplicates a selection cannot be larger than the pool. Pass '
            'allow_duplicates=True or generate a larger pool.'
        )

    if num_units > 0 and num_pool == 0:
        raise CalibrationError(
            f'The pool is empty but {num_units} units were requested; generate a pool first.'
        )

    resolved = _AUTO_METHOD if method == 'auto' else method
    rng = _resolve_rng(seed)
    deadline = None if max_seconds is None else started + max_seconds
    start_deadline = None if max_seconds is None else started + _PDHG_BUDGET_SHARE * max_seconds
    types = given_types if given_types is not None else (
        _unit_types(matrix) if num_pool else None
    )
    num_types = 0 if types is None else int(types.multiplicities.size)
    if types is not None:
        matrix = types.matrix
    multiplicities = (
        np.zeros(0, dtype=np.int64) if types is None else types.multiplicities
    )
    cap = None if allow_duplicates else multiplicities
    iterations = 0
    if num_units == 0:
        counts = np.zeros(num_types, dtype=np.int64)
    elif not allow_duplicates and num_units == num_pool:
        counts = multiplicities.copy()
    elif resolved.startswith('lp'):
        probabilities, _, iterations = _lp_relaxation(
            matrix, targets, cell_weights, tolerances, num_units, cap, start_deadline
        )
        counts = _systematic_sample(probabilities, num_units, cap, rng)
    elif resolved.startswith('raking'):
        probabilities, iterations = _rake(
            matrix, targets, cell_weights, tolerances, num_units, cap, start_deadline
        )
        counts = _systematic_sample(probabilities, num_units, cap, rng)
    else:
        counts = _random_counts(multiplicities, num_units, allow_duplicates, rng)

    def objective_of(selection):
        residuals = targets - matrix.T @ selection.astype(np.float64)
        return float((cell_weights * _loss(residuals, tolerances)).sum())

    objective_before = objective_of(counts)
    stopped_by = 'no_refinement'
    swaps = 0
    if resolved.endswith('swaps') and 0 < num_units and (allow_duplicates or num_units < num_pool):
        refiner = _SwapRefiner(matrix, targets, cell_weights, tolerances, counts, cap)
        stopped_by = refiner.run(deadline, max_swaps)
        iterations += refiner.rounds
        swaps = refiner.swaps
        counts = refiner.counts

    objective_after = objective_of(counts)
    if types is not None:
        counts = _expand_types(counts, types, rng)
    else:
        counts = np.zeros(num_pool, dtype=np.int64)

    return CalibrationResult(
        indices=np.repeat(np.arange(num_pool, dtype=np.int64), counts),
        objective_before=objective_before,
        objective_after=objective_after,
        iterations=iterations,
        seconds=time.perf_counter() - started,
        method=resolved,
        swaps=swaps,
        stopped_by=stopped_by,
        num_types=num_types,
    )
