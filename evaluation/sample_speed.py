"""How fast ``sample(n)`` is, as a ratio to GaussianCopula's in the same script.

The user's case from issue 13: ``fit`` on a 3,000-row retail table (the paper's e-commerce
Bayesian network, ``sdv_llmsynthor.evaluation.ecommerce_bn``, seed 0) with the statistical
planner, then ``sample(num_rows)`` for 2,000, 200,000 and 1,000,000 rows, next to
``GaussianCopulaSynthesizer`` fitted on the same rows. Every measurement runs in a fresh Python
process (so the peak memory is the sampling's own, and nothing is warm that a user's first call
would not have), ``--repeats`` times, alternating the two synthesizers; the tables quote medians
and the ratio of the medians.

Measured per run: wall time of the first ``sample`` call after ``fit`` (and of a second call,
when the library's index is cached), growth of the peak resident set size during the first call
(``ru_maxrss``), and fidelity: mean and max TVD of the sample to the spec ``fit(data)`` derived
(the same spec for both synthesizers).

``--ablation`` adds, at 200,000 rows, the calibration as it was before it solved over the pool's
distinct rows (every unit its own type), to show what that change bought and that it did not
cost fidelity.

Run from the repository root::

    python -m evaluation.sample_speed          # writes evaluation/results/sample_speed.*
    python -m evaluation.sample_speed --quick  # 1 repeat, 2,000 and 200,000 rows, printed only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'evaluation' / 'results'
METADATA_PATH = ROOT / 'metadata' / 'ecommerce.json'
TRAIN_ROWS = 3000
TRAIN_SEED = 0
SIZES = (2_000, 200_000, 1_000_000)
LABELS = {
    'llmsynthor': 'LLMSynthorSynthesizer (statistical)',
    'gaussian_copula': 'GaussianCopulaSynthesizer',
    'llmsynthor_untyped': 'LLMSynthor, calibration over units (before)',
}


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _fidelity(spec_path, frame, metadata):
    from sdv_llmsynthor.evaluation.fidelity import fidelity_report

    summary = fidelity_report(spec_path, frame, metadata).summary()
    return {'mean_tvd': float(summary['mean_tvd']), 'max_tvd': float(summary['max_tvd'])}


def _untyped():
    """Make the calibration treat every unit as its own type (the algorithm before)."""
    import numpy as np

    from sdv_llmsynthor.core import calibration

    def every_unit_its_own_type(matrix):
        size = matrix.shape[0]
        return calibration._UnitTypes(matrix, np.ones(size, dtype=np.int64),
                                      np.arange(size, dtype=np.int64))

    def given_types_undone(matrix, unit_types):
        return every_unit_its_own_type(matrix[np.asarray(unit_types, dtype=np.int64)])

    calibration._unit_types = every_unit_its_own_type
    calibration._given_types = given_types_undone


def _child(which, rows, spec_path):
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce
    from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

    metadata = Metadata.load_from_json(str(METADATA_PATH))
    data = {'transactions': sample_ecommerce(TRAIN_ROWS, TRAIN_SEED)}
    if which == 'gaussian_copula':
        synthesizer = GaussianCopulaSynthesizer(metadata)
    else:
        if which == 'llmsynthor_untyped':
            _untyped()
        synthesizer = LLMSynthorSynthesizer(metadata, planner='statistical', seed=0,
                                            verbose=False)
    started = time.perf_counter()
    synthesizer.fit(data)
    fit_seconds = time.perf_counter() - started
    del data
    if which != 'gaussian_copula' and not Path(spec_path).exists():
        synthesizer.get_spec().save(spec_path)
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    frame = synthesizer.sample(num_rows=rows)['transactions']
    sample_seconds = time.perf_counter() - started
    peak = _peak_rss_mb() - baseline
    calibration = None
    if which != 'gaussian_copula':
        calibration = (synthesizer.get_run_report('sample').get('calibration') or {})
    result = {
        'which': which, 'rows': len(frame), 'fit_seconds': fit_seconds,
        'sample_seconds': sample_seconds, 'peak_mb': peak,
        'calibration_seconds': None if calibration is None else calibration.get('seconds'),
        'num_types': None if calibration is None else calibration.get('num_types'),
        **_fidelity(spec_path, frame, metadata),
    }
    del frame
    started = time.perf_counter()
    synthesizer.sample(num_rows=rows)
    result['second_sample_seconds'] = time.perf_counter() - started
    return result


def _run_child(which, rows, spec_path):
    command = [sys.executable, '-m', 'evaluation.sample_speed', '--child', which,
               '--rows', str(rows), '--spec-path', str(spec_path)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith('{')]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f'{which} at {rows} rows failed:\n{completed.stderr[-3000:]}')
    return json.loads(lines[-1])


def _median(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _summaries(runs):
    out = []
    for rows in sorted({run['rows'] for run in runs}):
        for which in LABELS:
            group = [run for run in runs if run['rows'] == rows and run['which'] == which]
            if not group:
                continue
            out.append({
                'which': which, 'rows': rows, 'runs': len(group),
                **{key: _median(group, key) for key in (
                    'fit_seconds', 'sample_seconds', 'second_sample_seconds', 'peak_mb',
                    'calibration_seconds', 'num_types', 'mean_tvd', 'max_tvd')},
            })
    return out


def _ratio(summaries, rows, key):
    ours = next((s for s in summaries if s['rows'] == rows and s['which'] == 'llmsynthor'), None)
    peer = next((s for s in summaries
                 if s['rows'] == rows and s['which'] == 'gaussian_copula'), None)
    if not ours or not peer or not peer[key]:
        return None
    return ours[key] / peer[key]


def _optional(value, pattern):
    return '' if value is None else pattern.format(value)


def _markdown(summaries, args, load, started_at):
    sizes = sorted({s['rows'] for s in summaries})
    lines = [
        '# sample(n) speed: a ratio to GaussianCopula in the same script', '',
        f'Generated by `python -m evaluation.sample_speed'
        f"{' --ablation' if args.ablation else ''}` on {platform.platform()}, "
        f'{os.cpu_count()} CPUs (shared), python {platform.python_version()}; started '
        f'{started_at}, load average then {load}. Both synthesizers `fit` on {TRAIN_ROWS:,} rows '
        f'of the e-commerce Bayesian network (seed {TRAIN_SEED}); LLMSynthor with '
        '`planner="statistical"` and no spec (`fit(data)` derives it). Every run is a fresh '
        f'process; medians of {args.repeats} runs per cell, alternating the synthesizers. '
        'Peak memory is the growth of the peak resident set size during the first `sample` '
        'call. Fidelity is the mean (max) TVD of the sample to the derived spec.', '',
        '| rows | synthesizer | sample (first call) | sample (second call) | ratio to GC | '
        'peak memory | memory ratio | calibration | unit types | mean TVD | max TVD |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for summary in summaries:
        is_ours = summary['which'] == 'llmsynthor'
        time_ratio = _ratio(summaries, summary['rows'], 'sample_seconds') if is_ours else None
        memory_ratio = _ratio(summaries, summary['rows'], 'peak_mb') if is_ours else None
        lines.append(
            f"| {summary['rows']:,} | {LABELS[summary['which']]} | "
            f"{summary['sample_seconds']:.3f} s | {summary['second_sample_seconds']:.3f} s | "
            f"{'' if time_ratio is None else f'{time_ratio:.2f}x'} | "
            f"{summary['peak_mb']:.0f} MB | "
            f"{'' if memory_ratio is None else f'{memory_ratio:.2f}x'} | "
            f"{_optional(summary['calibration_seconds'], '{:.3f} s')} | "
            f"{_optional(summary['num_types'], '{:,.0f}')} | "
            f"{summary['mean_tvd']:.5f} | {summary['max_tvd']:.5f} |"
        )
    lines += ['', '## Against the goals of issue 13', '']
    for rows in sizes:
        ratio = _ratio(summaries, rows, 'sample_seconds')
        memory = _ratio(summaries, rows, 'peak_mb')
        if ratio is not None and rows >= 100_000:
            lines.append(f'- {rows:,} rows: time {ratio:.2f}x GaussianCopula (goal <= 0.25x at '
                         f'200k and 1M), memory {memory:.2f}x (goal <= 2x).')
    small = next((s for s in summaries if s['rows'] == min(sizes) and s['which'] == 'llmsynthor'),
                 None)
    if small is not None:
        lines.append(f"- {small['rows']:,} rows: {small['sample_seconds']:.3f} s in all "
                     '(goal: at most 0.3 s of fixed overhead).')
    return '\n'.join(lines) + '\n'


def _plot(summaries, path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for which, label in LABELS.items():
        points = [s for s in summaries if s['which'] == which]
        if len(points) < 2:
            continue
        rows = [s['rows'] for s in points]
        left.plot(rows, [s['sample_seconds'] for s in points], marker='o', label=label)
        right.plot(rows, [s['peak_mb'] for s in points], marker='o', label=label)
    for axis, title in ((left, 'sample() wall time, s (median)'),
                        (right, 'peak memory growth in sample(), MB')):
        axis.set_xscale('log')
        axis.set_yscale('log')
        axis.set_xlabel('rows sampled')
        axis.set_title(title)
        axis.grid(True, which='both', alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    """Run the benchmark (or one measurement with ``--child``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--quick', action='store_true',
                        help='1 repeat at 2,000 and 200,000 rows; print only')
    parser.add_argument('--ablation', action='store_true',
                        help='add the calibration over units (before) at 200,000 rows')
    parser.add_argument('--child', choices=list(LABELS))
    parser.add_argument('--rows', type=int)
    parser.add_argument('--spec-path')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    if args.child:
        print(json.dumps(_child(args.child, args.rows, args.spec_path)))
        return 0

    if args.quick:
        args.repeats = 1
    sizes = SIZES[:2] if args.quick else SIZES
    load = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    started_at = time.strftime('%Y-%m-%d %H:%M')
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        spec_path = Path(folder) / 'derived_spec.json'
        for rows in sizes:
            for repeat in range(args.repeats):
                order = ('llmsynthor', 'gaussian_copula')
                for which in order if repeat % 2 == 0 else order[::-1]:
                    print(f'{which} at {rows:,} rows, run {repeat + 1} ...', file=sys.stderr,
                          flush=True)
                    runs.append(_run_child(which, rows, spec_path))
            if args.ablation and rows == 200_000:
                runs.append(_run_child('llmsynthor_untyped', rows, spec_path))
    summaries = _summaries(runs)
    text = _markdown(summaries, args, load, started_at)
    print(text)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / 'sample_speed.md').write_text(text, encoding='utf-8')
        (RESULTS / 'sample_speed.json').write_text(
            json.dumps({'runs': runs, 'summaries': summaries}, indent=2), encoding='utf-8')
        _plot(summaries, RESULTS / 'sample_speed.png')
        print('wrote evaluation/results/sample_speed.{md,json,png}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
