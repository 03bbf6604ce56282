"""*Fit learns, sample draws*: ``sample(1_000_000)`` after a fit, next to GaussianCopula.

Measures, each in a fresh Python process (so peak memory is the sampling's own):

1. ``LLMSynthorSynthesizer``: ``fit()`` on the e-commerce spec (``specs/examples/ecommerce.json``,
   2,000 rows; the statistical planner by default so the run is reproducible and offline, or
   ``--planner anchored --llm local``), then ``sample(1_000_000)``: wall time, peak resident
   memory above the process's level before sampling, LLM calls made by ``sample`` (0 unless
   the library lacks cells), and the sample's fidelity to the spec (mean and max TVD over the
   spec's statistics, ``evaluation.fidelity``).
2. ``GaussianCopulaSynthesizer`` fitted on 2,000 rows of the paper's e-commerce Bayesian network
   (``sdv_llmsynthor.evaluation.ecommerce_bn``, the population the spec was derived from), then
   ``sample(1_000_000)``: the same measurements.

Run from the repository root::

    python -m evaluation.sample_scale                 # writes evaluation/results/sample_scale.md
    python -m evaluation.sample_scale --rows 100000   # a quicker check, printed only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / 'evaluation' / 'results' / 'sample_scale.md'
SPEC_PATH = ROOT / 'specs' / 'examples' / 'ecommerce.json'
METADATA_PATH = ROOT / 'metadata' / 'ecommerce.json'
TRAIN_ROWS = 2000
TRAIN_SEED = 0


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _fidelity(frame, metadata):
    from sdv_llmsynthor.evaluation.fidelity import fidelity_report

    summary = fidelity_report(str(SPEC_PATH), frame, metadata).summary()
    return {'mean_tvd': summary['mean_tvd'], 'max_tvd': summary['max_tvd']}


def _child_llmsynthor(rows, planner, llm, seed):
    from sdv.metadata import Metadata

    from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

    metadata = Metadata.load_from_json(str(METADATA_PATH))
    synthesizer = LLMSynthorSynthesizer(metadata, spec=str(SPEC_PATH), planner=planner, llm=llm,
                                        seed=seed, verbose=False)
    started = time.perf_counter()
    synthesizer.fit()
    fit_seconds = time.perf_counter() - started
    calls_after_fit = synthesizer.get_usage()['llm_calls']
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    frame = synthesizer.sample(num_rows=rows)['transactions']
    sample_seconds = time.perf_counter() - started
    peak = _peak_rss_mb()
    report = synthesizer.get_run_report('sample')
    return {
        'synthesizer': f'LLMSynthorSynthesizer (planner {planner})',
        'fit_seconds': fit_seconds,
        'fit_llm_calls': calls_after_fit,
        'sample_seconds': sample_seconds,
        'sample_llm_calls': synthesizer.get_usage()['llm_calls'] - calls_after_fit,
        'rows': len(frame),
        'peak_mb': peak - baseline,
        'library_size': len(synthesizer.get_library()),
        'calibration_seconds': (report.get('calibration') or {}).get('seconds'),
        **_fidelity(frame, metadata),
    }


def _child_gaussian_copula(rows, seed):
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce

    metadata = Metadata.load_from_json(str(METADATA_PATH))
    data = sample_ecommerce(TRAIN_ROWS, TRAIN_SEED)
    synthesizer = GaussianCopulaSynthesizer(metadata)
    started = time.perf_counter()
    synthesizer.fit({'transactions': data})
    fit_seconds = time.perf_counter() - started
    del data
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    frame = synthesizer.sample(num_rows=rows)['transactions']
    sample_seconds = time.perf_counter() - started
    peak = _peak_rss_mb()
    return {
        'synthesizer': 'GaussianCopulaSynthesizer',
        'fit_seconds': fit_seconds,
        'fit_llm_calls': 0,
        'sample_seconds': sample_seconds,
        'sample_llm_calls': 0,
        'rows': len(frame),
        'peak_mb': peak - baseline,
        'library_size': None,
        'calibration_seconds': None,
        **_fidelity(frame, metadata),
    }


def _run_child(which, args):
    command = [sys.executable, '-m', 'evaluation.sample_scale', '--child', which,
               '--rows', str(args.rows), '--planner', args.planner, '--seed', str(args.seed)]
    if args.llm:
        command += ['--llm', args.llm]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith('{')]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f'{which} failed:\n{completed.stderr[-3000:]}')
    return json.loads(lines[-1])


def _format(value, pattern):
    return '' if value is None else pattern.format(value)


def _markdown(results, args, load, started_at):
    lines = [
        '# Sampling at scale: fit learns, sample draws', '',
        f'Generated by `python -m evaluation.sample_scale` on {platform.platform()}, '
        f'{os.cpu_count()} CPUs (shared), python {platform.python_version()}; started '
        f'{started_at}, load average then {load}. The machine is shared with other jobs, so '
        'absolute times are noisy. Each synthesizer runs in its own process; peak memory is '
        'the growth of the peak resident set size during `sample` (ru_maxrss).', '',
        f'- LLMSynthor: `fit()` on `specs/examples/ecommerce.json` (2,000 rows, planner '
        f'`{args.planner}`' + (f', llm `{args.llm}`' if args.llm else '') + '), then '
        f'`sample(num_rows={args.rows:,})`.',
        f'- GaussianCopula: `fit` on {TRAIN_ROWS:,} rows of the e-commerce Bayesian network '
        f'(seed {TRAIN_SEED}, the population the spec was derived from), then '
        f'`sample(num_rows={args.rows:,})`.',
        '- Fidelity: mean and max TVD of the sample to the spec\'s 9 statistics (6 marginals, '
        '3 joints), as `evaluation.fidelity` computes them.', '',
        '| synthesizer | fit | sample | rows | peak memory (sample) | LLM calls in sample | '
        'library proposals | mean TVD to spec | max TVD to spec |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for result in results:
        lines.append(
            f"| {result['synthesizer']} | {result['fit_seconds']:.1f} s | "
            f"{result['sample_seconds']:.1f} s | {result['rows']:,} | "
            f"{result['peak_mb']:.0f} MB | {result['sample_llm_calls']} | "
            f"{_format(result['library_size'], '{:,}')} | {result['mean_tvd']:.5f} | "
            f"{result['max_tvd']:.5f} |"
        )
    ours = results[0]
    if ours.get('calibration_seconds') is not None:
        lines += ['', f"Of LLMSynthor's sampling time, {ours['calibration_seconds']:.1f} s is the "
                  'final calibration (exactly the requested rows, against the targets rescaled to '
                  'them); the rest is drawing records from the library, validity checks and '
                  'aggregation.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    """Run the benchmark (or one measurement with ``--child``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--planner', default='statistical',
                        choices=['statistical', 'anchored', 'free'])
    parser.add_argument('--llm', default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--child', choices=['llmsynthor', 'gaussian_copula'])
    parser.add_argument('--no-write', action='store_true', help='print only')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    if args.child == 'llmsynthor':
        print(json.dumps(_child_llmsynthor(args.rows, args.planner, args.llm, args.seed)))
        return 0
    if args.child == 'gaussian_copula':
        print(json.dumps(_child_gaussian_copula(args.rows, args.seed)))
        return 0

    load = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    started_at = time.strftime('%Y-%m-%d %H:%M')
    results = []
    for which in ('llmsynthor', 'gaussian_copula'):
        print(f'measuring {which} ...', file=sys.stderr, flush=True)
        results.append(_run_child(which, args))
    text = _markdown(results, args, load, started_at)
    print(text)
    if not args.no_write and args.rows == 1_000_000:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(text, encoding='utf-8')
        print(f'wrote {RESULTS_PATH.relative_to(ROOT)}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
