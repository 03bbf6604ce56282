"""Benchmark of the calibration step (``sdv_llmsynthor.core.calibration.calibrate_pool``).

Builds synthetic pools with no dependence on the rest of the engine: the targets are the cell
counts of a reference sample drawn from one latent-class distribution, the pool is drawn from a
perturbed version of it (so calibration has work to do), and every method selects exactly the
requested number of units. Two cases:

- single table: a 120,000-record pool to exactly 100,000 records, 10 categorical columns,
  20 statistics (10 marginals, 7 two-way and 3 three-way joints);
- households: a 12,000-household pool (2-5 persons each) to exactly 10,000 households, with
  household-level statistics (a household counts 1) and person-level statistics (a household
  counts its persons).

Run from the repository root::

    python -m evaluation.calibration_bench          # writes the markdown table
    python -m evaluation.calibration_bench --quick  # smaller pools, prints only
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sdv_llmsynthor.core.calibration import calibrate_pool, calibration_lower_bound

RESULTS_PATH = Path(__file__).parent / 'results' / 'calibration_bench.md'
METHODS = ('random', 'raking', 'lp', 'random_swaps', 'raking_swaps', 'lp_swaps')
HARD_METHODS = ('random', 'raking_swaps', 'lp_swaps')


@dataclass
class Statistic:
    """One target statistic: its name, its cells' columns in the matrix and its level."""

    name: str
    cells: slice
    level: str  # 'unit' (a unit counts 1) or 'person' (a household counts its persons)


@dataclass
class Case:
    """A calibration problem: pool contributions, targets and the statistics they form."""

    name: str
    contributions: sp.csr_matrix
    targets: np.ndarray
    cell_weights: np.ndarray
    num_units: int
    statistics: list


def _dirichlet_rows(rng, num_rows, size, concentration):
    return rng.dirichlet(np.full(size, concentration), size=num_rows)


def _tilt(rng, probabilities, strength):
    """Perturb each row of a probability table multiplicatively and renormalise."""
    tilted = probabilities * np.exp(strength * rng.standard_normal(probabilities.shape))
    return tilted / tilted.sum(axis=-1, keepdims=True)


def _draw_categorical(rng, probabilities):
    """One category per row of ``probabilities`` (rows sum to 1)."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random(len(probabilities))[:, None]
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


class _CellIndexer:
    """Assigns matrix columns to the cells of statistics over integer-coded columns."""

    def __init__(self):
        self.statistics = []
        self.num_cells = 0

    def add(self, name, cardinalities, level='unit'):
        size = int(np.prod(cardinalities))
        self.statistics.append(Statistic(name, slice(self.num_cells, self.num_cells + size), level))
        self.num_cells += size
        return self.statistics[-1]

    @staticmethod
    def flat_index(codes, cardinalities):
        index = np.zeros(len(codes[0]), dtype=np.int64)
        for values, cardinality in zip(codes, cardinalities):
            index = index * cardinality + values

        return index


def _latent_class_model(rng, cardinalities, num_classes):
    return {
        'classes': rng.dirichlet(np.full(num_classes, 2.0)),
        'columns': [_dirichlet_rows(rng, num_classes, size, 0.8) for size in cardinalities],
    }


def _perturb_model(rng, model, strength):
    return {
        'classes': _tilt(rng, model['classes'][None, :], strength)[0],
        'columns': [_tilt(rng, table, strength) for table in model['columns']],
    }


def _sample_records(rng, model, num_rows):
    classes = rng.choice(len(model['classes']), size=num_rows, p=model['classes'])
    return np.column_stack([_draw_categorical(rng, table[classes]) for table in model['columns']])


SINGLE_TABLE_CARDINALITIES = (2, 3, 4, 5, 6, 8, 10, 12, 7, 9)
SINGLE_TABLE_JOINTS = (
    (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (1, 6), (3, 8), (0, 2, 4), (1, 5, 7), (3, 6, 9),
)


def build_single_table_case(seed=0, num_units=100_000, pool_size=120_000, strength=0.1):
    """Single table: 10 categorical columns, 10 marginals and 10 joints (2- and 3-way).

    Args:
        seed (int):
            Seed of the synthetic distributions and samples.
        num_units (int):
            Records requested (the reference sample's size, so the targets are its counts).
        pool_size (int):
            Records in the pool.
        strength (float):
            Log-scale standard deviation of the perturbation between target and pool models.

    Returns:
        Case:
            The calibration problem.
    """
    rng = np.random.default_rng(seed)
    cardinalities = SINGLE_TABLE_CARDINALITIES
    truth = _latent_class_model(rng, cardinalities, num_classes=6)
    pool_model = _perturb_model(rng, truth, strength)
    reference = _sample_records(rng, truth, num_units)
    pool = _sample_records(rng, pool_model, pool_size)

    indexer = _CellIndexer()
    groups = [(column,) for column in range(len(cardinalities))] + list(SINGLE_TABLE_JOINTS)
    pool_cells, targets = [], []
    for group in groups:
        sizes = [cardinalities[column] for column in group]
        statistic = indexer.add(' x '.join(f'c{column}' for column in group), sizes)
        pool_cells.append(
            statistic.cells.start + indexer.flat_index([pool[:, c] for c in group], sizes)
        )
        reference_cells = indexer.flat_index([reference[:, c] for c in group], sizes)
        targets.append(np.bincount(reference_cells, minlength=int(np.prod(sizes))))

    columns = np.column_stack(pool_cells).ravel()
    rows = np.repeat(np.arange(pool_size), len(groups))
    contributions = sp.csr_matrix(
        (np.ones(columns.size), (rows, columns)), shape=(pool_size, indexer.num_cells)
    )
    targets = np.concatenate(targets).astype(np.float64)
    cell_weights = np.full(indexer.num_cells, 1.0 / (2 * num_units))
    return Case('single table', contributions, targets, cell_weights, num_units,
                indexer.statistics)


HOUSEHOLD_CARDINALITIES = {'size': 4, 'tenure': 3, 'income': 5, 'region': 4, 'vehicles': 4}
PERSON_CARDINALITIES = {'age': 8, 'sex': 2, 'education': 5, 'employment': 4}


def _household_model(rng):
    num_classes = 5
    model = _latent_class_model(rng, list(HOUSEHOLD_CARDINALITIES.values()), num_classes)
    # Person attributes depend on the household class and, for education and employment, on
    # the person's age group; the first person of a household is an adult (age group >= 2).
    model['age'] = _dirichlet_rows(rng, num_classes, PERSON_CARDINALITIES['age'], 1.0)
    model['sex'] = _dirichlet_rows(rng, num_classes, 2, 20.0)
    model['education'] = _dirichlet_rows(rng, PERSON_CARDINALITIES['age'], 5, 0.8)
    model['employment'] = _dirichlet_rows(
        rng, num_classes * PERSON_CARDINALITIES['age'], 4, 0.8
    )
    return model


def _perturb_household_model(rng, model, strength):
    perturbed = _perturb_model(rng, model, strength)
    for name in ('age', 'sex', 'education', 'employment'):
        perturbed[name] = _tilt(rng, model[name], strength)

    return perturbed


def _sample_households(rng, model, num_households):
    classes = rng.choice(len(model['classes']), size=num_households, p=model['classes'])
    households = np.column_stack(
        [_draw_categorical(rng, table[classes]) for table in model['columns']]
    )
    sizes = households[:, 0] + 2  # size codes 0..3 are 2..5 persons
    owner = np.repeat(np.arange(num_households), sizes)
    first = np.r_[True, owner[1:] != owner[:-1]]
    person_classes = classes[owner]
    age = _draw_categorical(rng, model['age'][person_classes])
    age[first] = np.maximum(age[first], 2)
    sex = _draw_categorical(rng, model['sex'][person_classes])
    education = _draw_categorical(rng, model['education'][age])
    employment = _draw_categorical(
        rng, model['employment'][person_classes * PERSON_CARDINALITIES['age'] + age]
    )
    persons = np.column_stack([age, sex, education, employment])
    return households, owner, persons


HOUSEHOLD_STATISTICS = (
    ('size',), ('tenure',), ('income',), ('region',), ('vehicles',),
    ('size', 'income'), ('region', 'tenure'), ('income', 'vehicles'),
)
PERSON_STATISTICS = (
    ('age',), ('sex',), ('education',), ('employment',), ('age', 'sex'), ('age', 'education'),
    ('age', 'employment', 'sex'), ('income', 'employment'),
)


def _household_cells(indexer_statistics, households, owner, persons, num_households):
    """(rows, columns, counts) of each household's contributions."""
    household_columns = list(HOUSEHOLD_CARDINALITIES)
    person_columns = list(PERSON_CARDINALITIES)
    cardinalities = {**HOUSEHOLD_CARDINALITIES, **PERSON_CARDINALITIES}
    rows, cells = [], []
    for statistic, group in zip(indexer_statistics, HOUSEHOLD_STATISTICS + PERSON_STATISTICS):
        sizes = [cardinalities[name] for name in group]
        if statistic.level == 'unit':
            codes = [households[:, household_columns.index(name)] for name in group]
            rows.append(np.arange(num_households))
        else:
            codes = [
                persons[:, person_columns.index(name)] if name in person_columns
                else households[owner, household_columns.index(name)]
                for name in group
            ]
            rows.append(owner)

        cells.append(statistic.cells.start + _CellIndexer.flat_index(codes, sizes))

    return np.concatenate(rows), np.concatenate(cells)


def build_household_case(seed=0, num_units=10_000, pool_size=12_000, strength=0.1):
    """Households with 2-5 persons: household-level and person-level statistics.

    Args:
        seed (int):
            Seed of the synthetic distributions and samples.
        num_units (int):
            Households requested (the reference sample's size).
        pool_size (int):
            Households in the pool.
        strength (float):
            Log-scale standard deviation of the perturbation between target and pool models.

    Returns:
        Case:
            The calibration problem; person-level cells count persons.
    """
    rng = np.random.default_rng(seed)
    truth = _household_model(rng)
    pool_model = _perturb_household_model(rng, truth, strength)
    reference = _sample_households(rng, truth, num_units)
    pool = _sample_households(rng, pool_model, pool_size)

    cardinalities = {**HOUSEHOLD_CARDINALITIES, **PERSON_CARDINALITIES}
    indexer = _CellIndexer()
    for group in HOUSEHOLD_STATISTICS:
        indexer.add('hh: ' + ' x '.join(group), [cardinalities[name] for name in group])

    for group in PERSON_STATISTICS:
        indexer.add('person: ' + ' x '.join(group), [cardinalities[name] for name in group],
                    level='person')

    rows, cells = _household_cells(indexer.statistics, *pool, pool_size)
    contributions = sp.csr_matrix(
        (np.ones(rows.size), (rows, cells)), shape=(pool_size, indexer.num_cells)
    )  # duplicate (row, cell) entries are summed: a household counts its persons per cell
    reference_rows, reference_cells = _household_cells(indexer.statistics, *reference, num_units)
    del reference_rows
    targets = np.bincount(reference_cells, minlength=indexer.num_cells).astype(np.float64)

    cell_weights = np.empty(indexer.num_cells)
    for statistic in indexer.statistics:
        cell_weights[statistic.cells] = 1.0 / (2 * targets[statistic.cells].sum())

    return Case('households', contributions, targets, cell_weights, num_units,
                indexer.statistics)


def statistic_tvds(case, indices):
    """TVD between the selection's and the targets' shares, per statistic."""
    selected = np.asarray(case.contributions[indices].sum(axis=0)).ravel()
    tvds = []
    for statistic in case.statistics:
        target = case.targets[statistic.cells]
        current = selected[statistic.cells]
        tvds.append(0.5 * np.abs(current / current.sum() - target / target.sum()).sum())

    return np.array(tvds)


def run_method(case, method, seed=0, max_seconds=30.0):
    """Calibrate a case with one method; returns the result, its CPU time and TVDs."""
    cpu_started = time.process_time()
    result = calibrate_pool(
        case.contributions, case.targets, case.cell_weights, case.num_units, seed=seed,
        method=method, max_seconds=max_seconds,
    )
    cpu_seconds = time.process_time() - cpu_started
    indices = result.indices
    if len(indices) != case.num_units or len(np.unique(indices)) != len(indices):
        raise RuntimeError(f'{method}: the selection is not {case.num_units} distinct units')

    tvds = statistic_tvds(case, indices)
    print(
        f'  {case.name:12s} {method:13s} {result.seconds:6.2f} s wall {cpu_seconds:6.2f} s cpu  '
        f'objective {result.objective_before:.4f} -> {result.objective_after:.4f}  '
        f'swaps {result.swaps}  mean TVD {tvds.mean():.5f}  max TVD {tvds.max():.5f}',
        flush=True,
    )
    return {'method': method, 'result': result, 'cpu': cpu_seconds, 'tvds': tvds}


def _pool_tvds(case):
    """TVD of the whole pool (before any selection) per statistic: how far off the pool is."""
    return statistic_tvds(case, np.arange(case.contributions.shape[0]))


def _format_methods_table(rows, bound):
    lines = [
        '| method | wall s | CPU s | objective before swaps | objective | above lower bound '
        '| swaps | iterations | stopped by | mean TVD | max TVD |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    ]
    for row in rows:
        result, tvds = row['result'], row['tvds']
        gap = f'{result.objective_after / bound - 1:+.0%}' if bound > 0 else 'n/a'
        lines.append(
            f"| {row['method']} | {result.seconds:.2f} | {row['cpu']:.2f} | "
            f'{result.objective_before:.4f} | {result.objective_after:.4f} | {gap} | '
            f'{result.swaps} | {result.iterations} | {result.stopped_by} | {tvds.mean():.5f} | '
            f'{tvds.max():.5f} |'
        )

    return lines


def _format_statistics_table(case, rows):
    by_method = {row['method']: row['tvds'] for row in rows}
    pool = _pool_tvds(case)
    header = '| statistic | cells | whole pool | ' + ' | '.join(by_method) + ' |'
    lines = [header, '|---|---:|---:|' + '---:|' * len(by_method)]
    for position, statistic in enumerate(case.statistics):
        cells = statistic.cells.stop - statistic.cells.start
        values = ' | '.join(f'{tvds[position]:.5f}' for tvds in by_method.values())
        lines.append(f'| {statistic.name} | {cells} | {pool[position]:.5f} | {values} |')

    return lines


def _comparison(rows):
    """One sentence comparing the best method's objective with the others'."""
    ranked = sorted(rows, key=lambda row: row['result'].objective_after)
    best = ranked[0]
    best_objective = best['result'].objective_after
    others = ', '.join(
        f"{row['method']} {row['result'].objective_after:.4f} "
        f"({row['result'].objective_after / best_objective - 1:+.0%})"
        for row in ranked[1:]
    )
    return (
        f"Lowest objective: **{best['method']}** ({best_objective:.4f}); then {others}."
    )


def _case_section(case, rows, bound):
    matrix = case.contributions
    return [
        f'## {case.name}: a pool of {matrix.shape[0]:,} units to exactly {case.num_units:,}',
        '',
        f'{len(case.statistics)} statistics, {matrix.shape[1]} cells, {matrix.nnz:,} non-zero '
        f'contributions. Objective = sum of the statistics\' TVDs (cell weight 1 / (2 x '
        f'statistic total)); lower bound (dual of the linear relaxation, 2,000 iterations): '
        f'{bound:.4f}. Mean TVD over the pool as a whole: {_pool_tvds(case).mean():.4f}.',
        '',
        *_format_methods_table(rows, bound),
        '',
        _comparison(rows),
        '',
        'TVD per statistic (shares of the selection vs the targets; "whole pool" is the pool '
        'before selection):',
        '',
        *_format_statistics_table(case, rows),
        '',
    ]


def _timing_section(case, seeds):
    """Wall and CPU time of the default method over several seeds (the 10 s bar)."""
    lines = [
        f'## Timing of the default method (`auto` = `lp_swaps`) on the {case.name} case',
        '',
        '| calibration seed | wall s | CPU s | objective | swaps |',
        '|---:|---:|---:|---:|---:|',
    ]
    walls = []
    for seed in seeds:
        row = run_method(case, 'auto', seed=seed)
        walls.append(row['result'].seconds)
        lines.append(
            f"| {seed} | {row['result'].seconds:.2f} | {row['cpu']:.2f} | "
            f"{row['result'].objective_after:.4f} | {row['result'].swaps} |"
        )

    lines += ['', f'Median wall time: {np.median(walls):.2f} s.', '']
    return lines


def main(argv=None):
    """Run the benchmark and write the markdown table (unless ``--quick``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='small pools, print only')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    scale = 10 if args.quick else 1
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    single = build_single_table_case(args.seed, 100_000 // scale, 120_000 // scale)
    households = build_household_case(args.seed, 10_000 // scale, 12_000 // scale)
    hard = build_single_table_case(args.seed, 100_000 // scale, 120_000 // scale, strength=0.25)
    hard.name = 'single table, far-off pool'

    sections = []
    for case, methods in ((single, METHODS), (households, METHODS), (hard, HARD_METHODS)):
        rows = [run_method(case, method, seed=args.seed) for method in methods]
        bound = calibration_lower_bound(
            case.contributions, case.targets, case.cell_weights, case.num_units
        )
        print(f'  {case.name:12s} lower bound {bound:.4f}', flush=True)
        sections += _case_section(case, rows, bound)

    sections += _timing_section(single, seeds=(args.seed + 1, args.seed + 2, args.seed + 3))
    if args.quick:
        return

    text = '\n'.join([
        '# Calibration benchmark',
        '',
        'Generated by `python -m evaluation.calibration_bench` (seed '
        f'{args.seed}, Python {platform.python_version()}, {os.cpu_count()} CPUs, '
        f'{time.strftime("%Y-%m-%d")}, total {time.perf_counter() - started:.0f} s; load '
        f'average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: the machine is shared, '
        'so wall times include waiting for a core and CPU times are shown too).',
        '',
        'Pools are synthetic: targets are the cell counts of a reference sample from a '
        'latent-class model, the pool is drawn from a perturbed copy of it (log-normal tilts, '
        'sd 0.25 for the far-off pool, 0.1 otherwise). Methods: `random` = uniform draw '
        '(baseline); `raking` = bounded IPU weights + systematic sampling; `lp` = linear '
        'relaxation (PDHG) + systematic sampling; `*_swaps` = the same start refined by greedy '
        'pairwise swaps. "above lower bound" = how far the objective is above a certified '
        'lower bound on what any selection can reach.',
        '',
        *sections,
    ])
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(text + '\n')
    print(f'wrote {RESULTS_PATH}')


if __name__ == '__main__':
    main()
