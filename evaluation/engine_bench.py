"""Benchmark of the synthesis engine (``sdv_llmsynthor.core``): speed and fidelity.

Four measurements, each the median of repeated runs:

1. **Aggregation** (the operator Phi) of 1,000,000 rows x 10 columns over 20 statistics
   (10 marginals, numeric ones at sub-bin resolution, and 10 two- and three-way joints): from
   already encoded rows, and from a DataFrame (encoding included, with object and with
   pandas ``category`` columns). Bar: under 1 s.
2. **Engine time per iteration** (everything the loop does except the planner: anchors,
   count allocation, sampling, validity, aggregation of the batch, discrepancy) with the
   e-commerce spec and a 100,000-row pool, for an LLM-sized batch (20 anchors x 5 weighted
   completions, 1,000 records) and for a 10,000-record batch. Bar: under 50 ms.
3. **Engine cost vs pool size** from 10,000 to 1,000,000 rows (same batch): it should not grow
   with the pool, since counts are kept incrementally.
4. **Fidelity of the statistical planner** on the e-commerce spec derived from 2,000 rows of
   the paper's Bayesian network (``specs/examples/ecommerce.json``, BN seed 0, and the same
   derivation from BN seeds 1 and 2), for 2,000 and 100,000 requested rows: the TVD of every
   statistic of the spec after calibration. Bars: categorical marginals <= 0.002, binned
   numeric marginals <= 0.005, joints <= 0.02.

Run from the repository root::

    python -m evaluation.engine_bench           # writes evaluation/results/engine_bench.md
    python -m evaluation.engine_bench --quick   # fewer repeats, smaller sizes, prints only
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics as stats
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.aggregate import aggregate_codes, aggregate_frame
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.core.loop import SynthesisLoop, _young_collections_only
from sdv_llmsynthor.core.sampler import PROPOSAL_ID_COLUMN
from sdv_llmsynthor.evaluation.ecommerce_bn import build_ecommerce_metadata, sample_ecommerce
from sdv_llmsynthor.planners.base import Planner, Proposal
from sdv_llmsynthor.planners.statistical import StatisticalPlanner
from sdv_llmsynthor.spec.model import MacroSpec

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / 'evaluation' / 'results' / 'engine_bench.md'
ECOMMERCE_SPEC = ROOT / 'specs' / 'examples' / 'ecommerce.json'
ECOMMERCE_JOINTS = [
    ['product_category', 'user_age', 'gender'],
    ['price', 'product_category'],
    ['payment_method', 'location_tier'],
]
CATEGORICAL = ('gender', 'location_tier', 'product_category', 'payment_method')
NUMERIC = ('user_age', 'price')


def _median_seconds(function, repeats):
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return stats.median(times), result


# ---------------------------------------------------------------------- 1. aggregation
def _aggregation_case(num_rows, seed=0):
    """A 10-column spec (5 categorical, 5 binned numeric) with 20 statistics, and random rows."""
    rng = np.random.default_rng(seed)
    categorical = {f'c{i}': [f'v{j}' for j in range(size)]
                   for i, size in enumerate((2, 3, 5, 8, 12))}
    numeric = {f'x{i}': list(np.linspace(0, 100 * (i + 1), 7)) for i in range(5)}
    columns = {name: {'categories': values} for name, values in categorical.items()}
    columns.update({name: {'bins': edges, 'sub_bins': 8} for name, edges in numeric.items()})

    def cells_of(names):
        parts = []
        for name in names:
            if name in categorical:
                parts.append([[v] for v in categorical[name]])
            else:
                edges = numeric[name]
                if len(names) == 1:
                    fine = np.linspace(edges[0], edges[-1], 49)
                    parts.append([[[float(a), float(b)]] for a, b in zip(fine[:-1], fine[1:])])
                else:
                    parts.append([[[float(a), float(b)]] for a, b in zip(edges[:-1], edges[1:])])
        keys = [[]]
        for part in parts:
            keys = [key + item for key in keys for item in part]
        share = 1.0 / len(keys)
        return [{'key': key, 'value': share} for key in keys]

    names = list(categorical) + list(numeric)
    statistics = [{'name': name, 'columns': [name], 'cells': cells_of([name])}
                  for name in names]
    joints = [('c0', 'c1'), ('c2', 'x0'), ('c3', 'x1'), ('x2', 'x3'), ('c4', 'x4'),
              ('c0', 'c2', 'x0'), ('c1', 'c3', 'x2'), ('c4', 'x1', 'x3'), ('c2', 'c3', 'c4'),
              ('x0', 'x4', 'c1')]
    for joint in joints:
        statistics.append({'name': ' x '.join(joint), 'columns': list(joint),
                           'cells': cells_of(list(joint))})
    spec = MacroSpec.from_dict({'spec_version': '1.0', 'tables': {'t': {
        'num_rows': num_rows, 'columns': columns, 'statistics': statistics}}})
    metadata = {'tables': {'t': {'columns': {
        **{name: {'sdtype': 'categorical'} for name in categorical},
        **{name: {'sdtype': 'numerical'} for name in numeric},
    }}}, 'relationships': []}
    frame = pd.DataFrame({
        **{name: np.asarray(values, dtype=object)[rng.integers(0, len(values), num_rows)]
           for name, values in categorical.items()},
        **{name: rng.uniform(edges[0] - 1, edges[-1] + 1, num_rows)
           for name, edges in numeric.items()},
    })
    return spec, metadata, frame


def bench_aggregation(num_rows, repeats):
    spec, metadata, frame = _aggregation_case(num_rows)
    encoding = compile_table(spec, metadata, 't')
    codes = encoding.encode(frame)
    joints = sum(1 for s in encoding.statistics if s.is_joint)
    from_codes, counts = _median_seconds(
        lambda: aggregate_codes(encoding.statistics, {'t': codes}, {'t': num_rows}), repeats)
    from_frame, _ = _median_seconds(lambda: aggregate_frame(encoding, frame), repeats)
    categorical_frame = frame.astype({f'c{i}': 'category' for i in range(5)})
    from_categories, _ = _median_seconds(
        lambda: aggregate_frame(encoding, categorical_frame), repeats)
    encode_only, _ = _median_seconds(lambda: encoding.encode(frame), repeats)
    counted = sum(int(counts.get(s).sum()) for s in encoding.statistics)
    return {
        'rows': num_rows, 'columns': frame.shape[1], 'statistics': len(encoding.statistics),
        'joints': joints, 'cells': sum(s.num_cells for s in encoding.statistics),
        'from_codes': from_codes, 'from_frame': from_frame,
        'from_category_dtype': from_categories, 'encode_only': encode_only,
        'rows_counted': counted,
    }


# ---------------------------------------------------------------------- 2-3. engine time
class _ReplayPlanner(Planner):
    """LLM-shaped output without an LLM: k weighted completions per anchor, drawn at random.

    Its own time is excluded from the engine time anyway; it only shapes the batch.
    """

    name = 'replay'

    def __init__(self, completions=5):
        self.completions = completions

    def propose(self, anchors, state):
        encoders = state.encodings[state.table].encoders
        rng = state.rng
        proposals = []
        for anchor in anchors:
            for _ in range(self.completions):
                assignments = dict(anchor.fixed)
                for column, encoder in encoders.items():
                    if column in assignments or not encoder.is_encoded:
                        continue
                    if encoder.categories is not None:
                        assignments[column] = encoder.categories[
                            int(rng.integers(len(encoder.categories)))]
                    else:
                        start = int(rng.integers(encoder.num_codes))
                        assignments[column] = encoder.code_range_to_value((start, start + 1))
                proposals.append(Proposal(assignments, weight=float(rng.uniform(0.5, 2)),
                                          anchor_id=anchor.anchor_id, source=self.name))
        return proposals


def _loop_with_pool(pool_rows, batch_rows, planner, seed=0):
    spec = MacroSpec.load(ECOMMERCE_SPEC)
    metadata = build_ecommerce_metadata()
    loop = SynthesisLoop(spec, metadata, planner, num_rows=int(pool_rows * 2),
                         batch_rows=batch_rows, max_anchors=20, progress=False, seed=seed)
    loop._prepare()
    loop._reset_state()
    pool = sample_ecommerce(pool_rows, seed=seed + 100)
    pool[PROPOSAL_ID_COLUMN] = -1
    loop._add_to_pool(pool, None)
    return loop


def bench_engine_iteration(pool_rows, batch_rows, iterations, planner=None):
    """Median engine seconds per iteration (and its parts) at a given pool size."""
    loop = _loop_with_pool(pool_rows, batch_rows, planner or _ReplayPlanner())
    discrepancy = loop._pool_discrepancy()
    # As SynthesisLoop.run does: young garbage collections only, between iterations.
    with _young_collections_only():
        for _ in range(iterations + 1):
            discrepancy = loop._run_iteration(discrepancy, None)
            gc.collect(1)
    history = loop.history[1:]  # the first iteration warms caches up
    return {
        'pool_rows': pool_rows,
        'batch_records': stats.median(h['proposed'] for h in history),
        'proposals': stats.median(h['proposals'] for h in history),
        'engine_seconds': stats.median(h['engine_seconds'] for h in history),
        'planner_seconds': stats.median(h['planner_seconds'] for h in history),
    }


def bench_checkpoint(pool_rows, batch_rows, iterations, folder):
    spec = MacroSpec.load(ECOMMERCE_SPEC)
    loop = SynthesisLoop(spec, build_ecommerce_metadata(), _ReplayPlanner(),
                         num_rows=pool_rows, batch_rows=batch_rows, max_iterations=iterations,
                         progress=False, checkpoint_dir=folder, pool_factor=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = loop.run()
    return stats.median(h['checkpoint_seconds'] for h in result.history)


# ---------------------------------------------------------------------- 4. fidelity
def _specs():
    metadata = build_ecommerce_metadata()
    specs = {'examples/ecommerce.json (BN seed 0)': MacroSpec.load(ECOMMERCE_SPEC)}
    for seed in (1, 2):
        specs[f'from_data, BN seed {seed}'] = MacroSpec.from_data(
            sample_ecommerce(2000, seed=seed), metadata, joints=ECOMMERCE_JOINTS)
    return specs, metadata


def bench_fidelity(sizes, loop_seeds):
    specs, metadata = _specs()
    rows = []
    for spec_name, spec in specs.items():
        for num_rows in sizes:
            for seed in loop_seeds:
                started = time.perf_counter()
                result = SynthesisLoop(spec, metadata, StatisticalPlanner(), num_rows=num_rows,
                                       seed=seed, progress=False).run()
                seconds = time.perf_counter() - started
                tvd = result.discrepancy.tvd
                joints = [item.label for item in result.discrepancy.statistics
                          if item.statistic.is_joint]
                rows.append({
                    'spec': spec_name, 'rows': num_rows, 'seed': seed,
                    'categorical': max(tvd[c] for c in CATEGORICAL),
                    'numeric': max(tvd[c] for c in NUMERIC),
                    'joint': max(tvd[j] for j in joints),
                    'worst_joint': max(joints, key=lambda j: tvd[j]),
                    'iterations': len(result.history),
                    'stopped_by': result.stopped_by,
                    'pool': result.pool_units,
                    'planner_s': sum(h['planner_seconds'] for h in result.history),
                    'engine_s': sum(h['engine_seconds'] for h in result.history),
                    'calibration_s': result.calibration.seconds,
                    'wall_s': seconds,
                    'unmet': len(result.unmet),
                })
                print(rows[-1], flush=True)
    return rows


def bench_households(seed=0):
    """The population example (households and persons) with the statistical planner."""
    import json

    spec = MacroSpec.load(ROOT / 'specs' / 'examples' / 'population.json')
    with open(ROOT / 'metadata' / 'population.json', encoding='utf-8') as stream:
        metadata = json.load(stream)
    started = time.perf_counter()
    result = SynthesisLoop(spec, metadata, StatisticalPlanner(), seed=seed,
                           progress=False).run()
    seconds = time.perf_counter() - started
    by_table = {}
    for item in result.discrepancy.statistics:
        by_table.setdefault(item.statistic.table, []).append((item.tvd, item.label))
    rejections = result.rejections[result.rejections['rejected'] > 0]
    return {
        'households': len(result.data['households']),
        'persons': len(result.data['persons']),
        'worst': {table: max(values) for table, values in by_table.items()},
        'iterations': len(result.history), 'stopped_by': result.stopped_by,
        'pool': result.pool_units, 'wall_s': seconds,
        'rejections': rejections[['table', 'rule', 'checked', 'rejected', 'rate']],
        'unmet': result.unmet[['statistic', 'tvd', 'reason']],
    }


# ---------------------------------------------------------------------- report
def _ms(seconds):
    return f'{1000 * seconds:.1f} ms'


def _status(value, bar):
    return 'met' if value <= bar else 'NOT met'


def render(aggregation, iteration_rows, scaling, checkpoint, fidelity, repeats, quick,
           households=None):
    lines = ['# Engine benchmark', '']
    lines.append(
        'Generated by `python -m evaluation.engine_bench`'
        + (' --quick' if quick else '') + f' on {platform.platform()}, '
        f'{os.cpu_count()} CPUs (shared), python {platform.python_version()}, '
        f'numpy {np.__version__}, pandas {pd.__version__}. Times are medians of {repeats} '
        'runs (iteration times: medians over the iterations of one run, first one dropped). '
        f'Load average when the run started: {_LOAD_AT_START}; the machine is shared with '
        'other jobs, so absolute times are noisy.')
    lines.append('')
    lines.append('## 1. Aggregation (the operator Phi)')
    lines.append('')
    a = aggregation
    lines.append(
        f"{a['rows']:,} rows x {a['columns']} columns, {a['statistics']} statistics "
        f"({a['statistics'] - a['joints']} marginals with numeric ones at 48 sub-bins, "
        f"{a['joints']} two- and three-way joints; {a['cells']:,} cells in all).")
    lines.append('')
    lines.append('| path | median | bar (< 1 s) |')
    lines.append('|---|---|---|')
    lines.append(f"| from encoded rows (what the loop does) | {_ms(a['from_codes'])} | "
                 f"{_status(a['from_codes'], 1.0)} |")
    lines.append(f"| from a DataFrame, categorical columns as pandas `category` | "
                 f"{_ms(a['from_category_dtype'])} | {_status(a['from_category_dtype'], 1.0)} |")
    lines.append(f"| from a DataFrame, categorical columns as Python strings | "
                 f"{_ms(a['from_frame'])} | {_status(a['from_frame'], 1.0)} |")
    lines.append(f"| (of which encoding the string frame) | {_ms(a['encode_only'])} | |")
    lines.append('')
    lines.append('## 2. Engine time per iteration (everything except the planner)')
    lines.append('')
    lines.append('E-commerce spec (`specs/examples/ecommerce.json`), pool pre-filled with BN '
                 'rows, 20 anchors per iteration. "LLM-sized" = 5 weighted completions per '
                 'anchor whose counts the engine allocates (deficit scoring included).')
    lines.append('')
    lines.append('| pool rows | batch | records / iteration | proposals | engine time | '
                 'bar (< 50 ms) |')
    lines.append('|---|---|---|---|---|---|')
    for row in iteration_rows:
        status = _status(row['engine_seconds'], 0.05) if row.get('bar') else '(context)'
        lines.append(
            f"| {row['pool_rows']:,} | {row['label']} | {row['batch_records']:,.0f} | "
            f"{row['proposals']:,.0f} | {_ms(row['engine_seconds'])} | {status} |")
    lines.append('')
    lines.append(f'Checkpoint per iteration (append-only batch + JSON state, 1,000-record '
                 f'batches, tmp folder): {_ms(checkpoint)} median, timed apart from the '
                 'engine.')
    lines.append('')
    lines.append('## 3. Engine time per iteration vs pool size (LLM-sized batch)')
    lines.append('')
    lines.append('| pool rows | engine time |')
    lines.append('|---|---|')
    for row in scaling:
        lines.append(f"| {row['pool_rows']:,} | {_ms(row['engine_seconds'])} |")
    lines.append('')
    lines.append('Counts are updated with each batch only (aggregation is additive), so the '
                 'iteration cost follows the batch, not the pool.')
    lines.append('')
    lines.append('## 4. Fidelity with the statistical planner')
    lines.append('')
    lines.append('TVD of each statistic of the spec, measured on the calibrated output (exactly '
                 'the requested rows) at the spec\'s own resolution (numeric marginals: 6 '
                 'quantile bins x 8 sub-bins = 48 cells; joints over main bins). Maximum over '
                 'the statistics of each group. Bars: categorical <= 0.002, numeric <= 0.005, '
                 'joint <= 0.02.')
    lines.append('')
    lines.append('| spec | rows | loop seed | max categorical | max numeric | max joint | '
                 'iterations (stop) | pool | planner s | engine s | calibration s | wall s | '
                 'bars |')
    lines.append('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for row in fidelity:
        met = (row['categorical'] <= 0.002 and row['numeric'] <= 0.005
               and row['joint'] <= 0.02)
        lines.append(
            f"| {row['spec']} | {row['rows']:,} | {row['seed']} | {row['categorical']:.5f} | "
            f"{row['numeric']:.5f} | {row['joint']:.5f} | {row['iterations']} "
            f"({row['stopped_by']}) | {row['pool']:,} | {row['planner_s']:.1f} | "
            f"{row['engine_s']:.1f} | {row['calibration_s']:.1f} | {row['wall_s']:.1f} | "
            f"{'met' if met else 'NOT met'} |")
    lines.append('')
    if households is not None:
        h = households
        lines.append('## 5. Households and persons (context, no bar)')
        lines.append('')
        lines.append(
            f"`specs/examples/population.json` with the statistical planner: {h['households']:,} "
            f"households and {h['persons']:,} persons in {h['wall_s']:.1f} s, "
            f"{h['iterations']} iterations ({h['stopped_by']}), pool {h['pool']:,} households. "
            'Largest TVD per table: ' + ', '.join(
                f"{table} {tvd:.4f} ({label})" for table, (tvd, label) in h['worst'].items())
            + '. The statistical planner ignores validity rules, so the paper\'s household '
            'rules reject most of its households:')
        lines.append('')
        lines.append('| table | rule | checked | rejected | rate |')
        lines.append('|---|---|---|---|---|')
        for row in h['rejections'].itertuples(index=False):
            lines.append(f'| {row.table} | {row.rule} | {row.checked:,} | {row.rejected:,} | '
                         f'{row.rate:.3f} |')
        lines.append('')
        if len(h['unmet']):
            lines.append('Statistics the run report lists as not met, with its reasons:')
            lines.append('')
            for row in h['unmet'].itertuples(index=False):
                lines.append(f'- `{row.statistic}` (TVD {row.tvd:.4f}): {row.reason}')
            lines.append('')
    return '\n'.join(lines) + '\n'


_LOAD_AT_START = ''


def main(argv=None):
    global _LOAD_AT_START
    _LOAD_AT_START = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='small sizes, print only')
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = 2 if quick else 5

    aggregation = bench_aggregation(100_000 if quick else 1_000_000, repeats)
    print(aggregation, flush=True)

    iteration_rows = []
    pool = 20_000 if quick else 100_000
    for label, batch in (('LLM-sized (1,000)', 1_000), ('10,000 records', 10_000)):
        row = bench_engine_iteration(pool, batch, iterations=3 if quick else 10)
        row['label'] = label
        row['bar'] = batch == 1_000
        iteration_rows.append(row)
        print(row, flush=True)
    row = bench_engine_iteration(pool, 10_000, iterations=3 if quick else 5,
                                 planner=StatisticalPlanner())
    row['label'] = 'statistical planner (10,000)'
    iteration_rows.append(row)
    print(row, flush=True)

    scaling = []
    for pool_rows in ((10_000, 30_000) if quick else (10_000, 100_000, 300_000, 1_000_000)):
        row = bench_engine_iteration(pool_rows, 1_000, iterations=3 if quick else 8)
        scaling.append(row)
        print(row, flush=True)

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = bench_checkpoint(5_000, 1_000, 6, folder)

    fidelity = bench_fidelity((2_000,) if quick else (2_000, 100_000), (0,))
    households = bench_households()
    text = render(aggregation, iteration_rows, scaling, checkpoint, fidelity, repeats, quick,
                  households)
    print(text)
    if not quick:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(text, encoding='utf-8')
        print(f'wrote {RESULTS_PATH}')


if __name__ == '__main__':
    main()
