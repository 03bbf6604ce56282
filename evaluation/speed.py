"""Speed and scale (issue 6, section 4): LLMSynthor next to SDV's synthesizers, in one run.

Two measurements, both in this one script:

1. **Per method**, each in its own Python process (so its peak memory is its own): fit time,
   sample time for 2,000 rows and for a large request (1,000,000 rows; 100,000 with
   ``--quick``), the growth of the process's peak resident set size (``ru_maxrss``) during the
   fit and during the large sample, and LLM calls and tokens per 1,000 records.

   - LLMSynthor, statistical planner: ``fit()`` on ``specs/examples/ecommerce.json`` (2,000
     rows; ``metadata/ecommerce.json``).
   - LLMSynthor, anchored planner with the embedded model (SmolLM2-135M-Instruct through
     llama.cpp, one thread): the same ``fit()`` with a token budget (:data:`TOKEN_BUDGET`)
     that keeps it within about ten minutes; once it is spent, the statistical planner
     completes the remaining anchors.
   - SDV GaussianCopula, CTGAN, TVAE, CopulaGAN, fitted on 2,000 rows of the paper's e-commerce
     Bayesian network (``sample_ecommerce(2000, seed=0)``, the population the spec was derived
     from) with the epochs of ``evaluation.ecommerce`` (full mode) or 5 epochs (``--quick``).

   Cheap measurements are repeated three times and the median reported: the 2,000-row sample
   always; the fit when it takes under :data:`REPEAT_UNDER_SECONDS`; the large sample when it
   takes under :data:`REPEAT_UNDER_SECONDS` (peak memory is that of the first one). Ratios are
   to GaussianCopula measured in the same run.

2. **The engine's own cost per iteration vs pool size** (10,000 to 1,000,000 rows; anchors,
   count allocation, sampling, validity, aggregation, discrepancy: everything but the planner),
   with an LLM-sized batch (1,000 records), by
   :func:`evaluation.engine_bench.bench_engine_iteration`, and per batch size at a fixed
   pool. Next to it: the median wall time of one embedded LLM call, timed around every
   completion of the anchored fit above. A log-log plot shows both.

Run from the repository root::

    python -m evaluation.speed --quick   # minutes: 5 epochs, 100,000-row samples, small budget
    python -m evaluation.speed           # writes evaluation/results/speed.{md,json,png}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics as stats
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'evaluation' / 'results'
SPEC_PATH = ROOT / 'specs' / 'examples' / 'ecommerce.json'
METADATA_PATH = ROOT / 'metadata' / 'ecommerce.json'
TABLE = 'transactions'
TRAIN_ROWS = 2000
TRAIN_SEED = 0
SMALL_ROWS = 2000
REPEATS = 3
REPEAT_UNDER_SECONDS = 30.0
TOKEN_BUDGET = 12_000
"""Tokens (prompt plus completion) the anchored embedded fit may spend in full mode."""
QUICK_TOKEN_BUDGET = 2_500
"""The same in ``--quick`` mode."""

METHODS = {
    'llmsynthor_statistical': 'LLMSynthor (statistical planner)',
    'llmsynthor_anchored_local': 'LLMSynthor (anchored, embedded SmolLM2-135M)',
    'GaussianCopula': 'SDV GaussianCopula',
    'CTGAN': 'SDV CTGAN',
    'TVAE': 'SDV TVAE',
    'CopulaGAN': 'SDV CopulaGAN',
}
"""Methods of the per-method table, by key (``--child`` value) and display name."""


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _limit_threads():
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch comes with sdv
        pass


def timed_median(function, repeats=REPEATS, repeat_under=None):
    """Run ``function`` and return the median wall time and the last result.

    Args:
        function (callable):
            Called without arguments.
        repeats (int):
            Runs when every run is cheap.
        repeat_under (float or None):
            Repeat only when the first run took less than this many seconds (None: always).

    Returns:
        tuple[float, list[float], object]:
            The median seconds, every run's seconds, and the last run's result.
    """
    times = []
    result = None
    for index in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
        if index == 0 and repeat_under is not None and times[0] >= repeat_under:
            break
    return stats.median(times), times, result


class CallTimer:
    """Wrap an LLM client's ``_send`` to time every completion the model answers.

    Cached replies never reach ``_send``, so only real model calls are timed.

    Args:
        client (LLMClient):
            The client; its ``_send`` is replaced on the instance.
    """

    def __init__(self, client):
        self.seconds = []
        send = client._send

        def timed_send(*args, **kwargs):
            started = time.perf_counter()
            try:
                return send(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)

        client._send = timed_send


def per_thousand(value, records):
    """``value`` per 1,000 records (None when no record was made)."""
    return None if not records else 1000.0 * value / records


# ---------------------------------------------------------------------- children
def _llmsynthor_factory(planner, quick):
    from sdv.metadata import Metadata

    from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

    metadata = Metadata.load_from_json(str(METADATA_PATH))
    info = {'timer': None}

    def make():
        llm = None
        budget = None
        if planner == 'anchored':
            from sdv_llmsynthor.llm.local import LocalLlamaClient

            llm = LocalLlamaClient(seed=0, n_threads=1)
            info['timer'] = CallTimer(llm)
            budget = QUICK_TOKEN_BUDGET if quick else TOKEN_BUDGET
            info['token_budget'] = budget
        return LLMSynthorSynthesizer(metadata, spec=str(SPEC_PATH), planner=planner, llm=llm,
                                     token_budget=budget, seed=0, verbose=False)

    def fit(synthesizer):
        synthesizer.fit()

    return make, fit, info


def _sdv_factory(name, quick):
    import sdv.single_table
    from sdv.metadata import Metadata

    from evaluation.ecommerce import FULL_EPOCHS, QUICK_EPOCHS
    from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce

    metadata = Metadata.load_from_json(str(METADATA_PATH))
    data = sample_ecommerce(TRAIN_ROWS, TRAIN_SEED)
    parameters = {}
    if name in FULL_EPOCHS:
        parameters['epochs'] = QUICK_EPOCHS if quick else FULL_EPOCHS[name]
    info = {'parameters': parameters}

    def make():
        return getattr(sdv.single_table, f'{name}Synthesizer')(metadata, **parameters)

    def fit(synthesizer):
        import random

        import numpy as np
        import torch

        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        synthesizer.fit({TABLE: data})

    return make, fit, info


def _usage(synthesizer):
    getter = getattr(synthesizer, 'get_usage', None)
    if getter is None:
        return {'llm_calls': 0, 'prompt_tokens': 0, 'completion_tokens': 0}
    usage = getter()
    return {key: int(usage.get(key, 0) or 0)
            for key in ('llm_calls', 'prompt_tokens', 'completion_tokens')}


def measure_method(key, large_rows, quick):
    """Measure one method in the current process (see the module docstring).

    Args:
        key (str):
            A key of :data:`METHODS`.
        large_rows (int):
            Rows of the large sample.
        quick (bool):
            Quick mode (fewer epochs, smaller token budget).

    Returns:
        dict:
            The measurements.
    """
    _limit_threads()
    warnings.simplefilter('ignore')
    if key.startswith('llmsynthor_'):
        make, fit, info = _llmsynthor_factory(key.split('_')[1], quick)
    else:
        make, fit, info = _sdv_factory(key, quick)

    fits = []

    def fit_once():
        synthesizer = make()
        fit(synthesizer)
        fits.append(synthesizer)
        return synthesizer

    before_fit = _peak_rss_mb()
    fit_seconds, fit_runs, synthesizer = timed_median(fit_once, repeat_under=10.0)
    fit_peak = _peak_rss_mb() - before_fit
    fit_usage = _usage(synthesizer)
    fit_rows = TRAIN_ROWS
    if key.startswith('llmsynthor_'):
        fit_rows = int(synthesizer._fit_units or TRAIN_ROWS)
    timer = info.get('timer')
    call_seconds = list(timer.seconds) if timer is not None else []
    del fits[:-1]

    def sample(rows):
        sampled = synthesizer.sample(num_rows=rows)
        frame = sampled[TABLE] if isinstance(sampled, dict) else sampled
        return len(frame)

    small_seconds, small_runs, small_len = timed_median(lambda: sample(SMALL_ROWS))
    before_large = _peak_rss_mb()
    started = time.perf_counter()
    large_len = sample(large_rows)
    large_runs = [time.perf_counter() - started]
    large_peak = _peak_rss_mb() - before_large
    if large_runs[0] < REPEAT_UNDER_SECONDS:
        for _ in range(REPEATS - 1):
            started = time.perf_counter()
            sample(large_rows)
            large_runs.append(time.perf_counter() - started)
    total_usage = _usage(synthesizer)
    sample_calls = total_usage['llm_calls'] - fit_usage['llm_calls']
    fit_tokens = fit_usage['prompt_tokens'] + fit_usage['completion_tokens']
    return {
        'key': key,
        'method': METHODS[key],
        'parameters': info.get('parameters', {}),
        'token_budget': info.get('token_budget'),
        'fit_seconds': fit_seconds,
        'fit_runs': fit_runs,
        'fit_rows': fit_rows,
        'fit_peak_mb': fit_peak,
        'small_rows': small_len,
        'small_seconds': small_seconds,
        'small_runs': small_runs,
        'large_rows': large_len,
        'large_seconds': stats.median(large_runs),
        'large_runs': large_runs,
        'large_peak_mb': large_peak,
        'fit_llm_calls': fit_usage['llm_calls'],
        'fit_tokens': fit_tokens,
        'fit_prompt_tokens': fit_usage['prompt_tokens'],
        'fit_completion_tokens': fit_usage['completion_tokens'],
        'calls_per_1k': per_thousand(fit_usage['llm_calls'], fit_rows),
        'tokens_per_1k': per_thousand(fit_tokens, fit_rows),
        'sample_llm_calls': sample_calls,
        'llm_call_seconds': call_seconds,
    }


def _run_child(key, args):
    command = [sys.executable, '-m', 'evaluation.speed', '--child', key,
               '--large-rows', str(args.large_rows)]
    if args.quick:
        command.append('--quick')
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith('{')]
    if completed.returncode != 0 or not lines:
        return {'key': key, 'method': METHODS[key], 'error': completed.stderr[-2000:]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------- engine
def measure_engine(pool_sizes, batch_sizes, batch_pool, iterations):
    """Engine seconds per iteration vs pool size (1,000-record batch) and vs batch size.

    Args:
        pool_sizes (list[int]):
            Pool sizes for the LLM-sized batch.
        batch_sizes (list[int]):
            Batch sizes at pool ``batch_pool``.
        batch_pool (int):
            The pool of the batch-size series.
        iterations (int):
            Iterations per measurement (median taken, first one dropped).

    Returns:
        dict:
            ``by_pool`` and ``by_batch``: lists of ``bench_engine_iteration`` rows.
    """
    from evaluation.engine_bench import bench_engine_iteration

    by_pool = []
    for pool_rows in pool_sizes:
        row = bench_engine_iteration(pool_rows, 1_000, iterations=iterations)
        by_pool.append(row)
        print(f'engine pool {pool_rows:,}: {1000 * row["engine_seconds"]:.1f} ms',
              file=sys.stderr, flush=True)
    by_batch = []
    for batch in batch_sizes:
        row = bench_engine_iteration(batch_pool, batch, iterations=iterations)
        row['batch_rows'] = batch
        by_batch.append(row)
        print(f'engine batch {batch:,}: {1000 * row["engine_seconds"]:.1f} ms '
              f'({row["batch_records"]:,.0f} records)', file=sys.stderr, flush=True)
    return {'by_pool': by_pool, 'by_batch': by_batch}


def plot_engine(engine, llm_call_seconds, path):
    """Log-log plot of engine time per iteration vs pool size, the LLM call as a line.

    Args:
        engine (dict):
            What :func:`measure_engine` returned.
        llm_call_seconds (float or None):
            Median wall time of one embedded LLM call.
        path (Path):
            The PNG to write.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    pools = [row['pool_rows'] for row in engine['by_pool']]
    axis.plot(pools, [row['engine_seconds'] for row in engine['by_pool']], 'o-',
              label='engine per iteration, 1,000-record batch, vs pool size')
    batches = [row['batch_records'] for row in engine['by_batch']]
    axis.plot(batches, [row['engine_seconds'] for row in engine['by_batch']], 's--',
              label='engine per iteration vs records per batch (x = batch)')
    if llm_call_seconds:
        axis.axhline(llm_call_seconds, color='crimson',
                     label=f'one embedded LLM call (median {llm_call_seconds:.1f} s)')
    axis.set_xscale('log')
    axis.set_yscale('log')
    axis.set_xlabel('rows (pool size, or records per batch)')
    axis.set_ylabel('seconds')
    axis.set_title('LLMSynthor engine cost per iteration (e-commerce spec)', fontsize=10)
    axis.grid(True, which='both', alpha=0.3)
    axis.legend(fontsize=7, loc='center right')
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------- report
def _seconds(value):
    if value is None:
        return ''
    if value < 1:
        return f'{1000 * value:.0f} ms'
    return f'{value:.1f} s'


def _ratio(value, reference):
    if value is None or not reference:
        return ''
    ratio = value / reference
    return f'{ratio:.0f}x' if ratio >= 10 else f'{ratio:.2g}x'


def _number(value, pattern='{:,.0f}'):
    return '' if value is None else pattern.format(value)


def render(results, engine, config):
    """The markdown report.

    Args:
        results (list[dict]):
            One :func:`measure_method` result per method (or an ``error``).
        engine (dict):
            What :func:`measure_engine` returned.
        config (dict):
            Command, date, load, sizes, versions.

    Returns:
        str
    """
    large = config['large_rows']
    reference = next((r for r in results if r['key'] == 'GaussianCopula' and 'error' not in r),
                     None)
    lines = [
        '# Speed and scale' + (' (quick)' if config['quick'] else ''), '',
        f"Generated by `{config['command']}` on {config['platform']}, {config['cpus']} CPUs "
        f"(shared with other jobs), python {config['python']}; started {config['started']}, "
        f"load average then {config['load_start']} and at the end {config['load_end']}; "
        f"total {config['total_seconds']:.0f} s. Absolute times are noisy on this shared "
        'machine; ratios to GaussianCopula are from the same run.', '',
        '## 1. Per method', '',
        'Each method runs in its own process (torch, BLAS and llama.cpp on one thread). '
        f'Medians of {REPEATS} runs for the 2,000-row sample, and for the fit and the '
        f'{large:,}-row sample when one run takes under {REPEAT_UNDER_SECONDS:.0f} s '
        '(10 s for the fit); otherwise one run (column "runs": fit / large sample). Peak '
        'memory: growth of the process\'s peak resident set size (ru_maxrss) during the '
        'first fit and during the first large sample. LLM calls and tokens per 1,000 records '
        'of the fit (2,000 records); no method called an LLM in `sample` unless the column '
        'says so.', '',
        '- LLMSynthor: `LLMSynthorSynthesizer(metadata, spec=\'specs/examples/ecommerce.json\', '
        'planner=...)`, `fit()` (2,000 rows, no real rows). The anchored planner uses the '
        'embedded model (`LocalLlamaClient(n_threads=1)`, what `llm=\'local\'` builds, with one '
        f"thread) and `token_budget={config['token_budget']:,}`: once spent, the statistical "
        'planner completes the remaining anchors without LLM calls.',
        f"- SDV: fitted on {TRAIN_ROWS:,} rows of the e-commerce Bayesian network (seed "
        f"{TRAIN_SEED}); epochs: {config['epochs']}.", '',
        f'| method | fit | fit vs GC | sample {SMALL_ROWS:,} | vs GC | sample {large:,} | '
        'vs GC | runs | peak MB fit | peak MB sample | LLM calls / 1k records | '
        'tokens / 1k records | LLM calls in sample |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        if 'error' in r:
            lines.append(f"| {r['method']} | failed: see the JSON | | | | | | | | | | | |")
            continue
        ref = reference or {}
        name = r['method']
        if r.get('parameters', {}).get('epochs'):
            name += f" ({r['parameters']['epochs']} epochs)"
        lines.append(
            f"| {name} | {_seconds(r['fit_seconds'])} | "
            f"{_ratio(r['fit_seconds'], ref.get('fit_seconds'))} | "
            f"{_seconds(r['small_seconds'])} | "
            f"{_ratio(r['small_seconds'], ref.get('small_seconds'))} | "
            f"{_seconds(r['large_seconds'])} | "
            f"{_ratio(r['large_seconds'], ref.get('large_seconds'))} | "
            f"{len(r['fit_runs'])} / {len(r['large_runs'])} | {r['fit_peak_mb']:.0f} | "
            f"{r['large_peak_mb']:.0f} | {_number(r['calls_per_1k'], '{:.1f}')} | "
            f"{_number(r['tokens_per_1k'])} | {r['sample_llm_calls']} |")
    anchored = next((r for r in results
                     if r['key'] == 'llmsynthor_anchored_local' and 'error' not in r), None)
    if anchored is not None:
        lines += ['', f"Anchored fit: {anchored['fit_llm_calls']} LLM calls, "
                  f"{anchored['fit_prompt_tokens']:,} prompt + "
                  f"{anchored['fit_completion_tokens']:,} completion tokens (budget "
                  f"{anchored['token_budget']:,}). LLMSynthor's sample is offline: it draws "
                  'from the library of proposals learned in `fit` and calibrates to the '
                  'targets rescaled to the requested rows.']
    call = config.get('llm_call_median')
    lines += [
        '', '## 2. Engine cost per iteration vs pool size', '',
        'The loop\'s own work per iteration (anchors, count allocation, sampling, validity, '
        'aggregation of the batch, discrepancy; not the planner), e-commerce spec, 20 anchors '
        'x 5 weighted completions (LLM-shaped, no LLM), measured by '
        '`evaluation.engine_bench.bench_engine_iteration`: median over '
        f"{config['engine_iterations']} iterations, first dropped. Plot: `speed"
        f"{config['suffix']}.png` (log-log).", '',
        '| pool rows | records / iteration | engine time | vs one embedded LLM call |',
        '|---|---|---|---|',
    ]
    for row in engine['by_pool']:
        lines.append(f"| {row['pool_rows']:,} | {row['batch_records']:,.0f} | "
                     f"{_seconds(row['engine_seconds'])} | "
                     f"{_number(100 * row['engine_seconds'] / call if call else None, '{:.2f}')}"
                     f"{'%' if call else ''} |")
    lines += ['', f"By batch size (pool {config['batch_pool']:,} rows):", '',
              '| records / iteration | engine time | per 1,000 records |', '|---|---|---|']
    for row in engine['by_batch']:
        lines.append(f"| {row['batch_records']:,.0f} | {_seconds(row['engine_seconds'])} | "
                     f"{_seconds(1000 * row['engine_seconds'] / max(row['batch_records'], 1))} |")
    if call:
        lines += ['', f"One embedded LLM call (SmolLM2-135M, one llama.cpp thread, the anchored "
                  f"fit's own calls): median {call:.2f} s over {config['llm_call_count']} calls "
                  f"(min {config['llm_call_min']:.2f} s, max {config['llm_call_max']:.2f} s)."]
    else:
        lines += ['', 'No embedded LLM call was timed (the anchored run failed or made no '
                  'call).']
    flat = engine['by_pool']
    if len(flat) >= 2 and call:
        growth = flat[-1]['engine_seconds'] / flat[0]['engine_seconds']
        batches = engine['by_batch']
        slope = ((batches[-1]['engine_seconds'] - batches[0]['engine_seconds'])
                 / max(batches[-1]['batch_records'] - batches[0]['batch_records'], 1))
        lines += ['', f"From {flat[0]['pool_rows']:,} to {flat[-1]['pool_rows']:,} pool rows "
                  f"the engine's time per iteration changes by a factor {growth:.2f}: counts are "
                  'kept incrementally, so it follows the batch, not the pool. By batch size it is '
                  'a fixed cost per iteration plus '
                  f"{1000 * slope * 1000:.1f} ms per 1,000 further records (from the smallest "
                  'to the largest batch), i.e. linear in the records an iteration makes. At '
                  f"the LLM-sized batch it stays at "
                  f"{100 * max(r['engine_seconds'] for r in flat) / call:.2g}% or less of one "
                  'embedded LLM call.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    """Run the benchmark (or one method with ``--child``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='5 epochs, 100,000-row samples, smaller pools and token budget')
    parser.add_argument('--large-rows', type=int, default=None)
    parser.add_argument('--methods', nargs='+', choices=list(METHODS), default=list(METHODS))
    parser.add_argument('--child', choices=list(METHODS))
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--render-only', action='store_true',
                        help='re-render the markdown and plot from the JSON of an earlier run')
    args = parser.parse_args(argv)
    if args.large_rows is None:
        args.large_rows = 100_000 if args.quick else 1_000_000
    if args.child:
        print(json.dumps(measure_method(args.child, args.large_rows, args.quick)))
        return 0

    warnings.simplefilter('ignore')
    suffix = '_quick' if args.quick else ''
    if args.render_only:
        saved = json.loads((args.out / f'speed{suffix}.json').read_text(encoding='utf-8'))
        _write(saved['methods'], saved['engine'], saved['config'], args.out)
        return 0
    load_start = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    started_at = time.strftime('%Y-%m-%d %H:%M %Z')
    started = time.perf_counter()
    results = []
    for key in args.methods:
        print(f'measuring {key} ...', file=sys.stderr, flush=True)
        results.append(_run_child(key, args))
        print(json.dumps({k: v for k, v in results[-1].items() if k != 'llm_call_seconds'}),
              file=sys.stderr, flush=True)

    _limit_threads()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        if args.quick:
            engine = measure_engine([10_000, 30_000, 100_000], [1_000, 10_000], 30_000, 4)
        else:
            engine = measure_engine([10_000, 30_000, 100_000, 300_000, 1_000_000],
                                    [1_000, 10_000, 100_000], 300_000, 8)
    from evaluation.ecommerce import FULL_EPOCHS, QUICK_EPOCHS

    call_seconds = [s for r in results for s in r.get('llm_call_seconds', [])]
    command = 'python -m evaluation.speed' + (' --quick' if args.quick else '')
    if args.methods != list(METHODS):
        command += ' --methods ' + ' '.join(args.methods)
    config = {
        'quick': args.quick, 'command': command, 'suffix': suffix,
        'platform': platform.platform(), 'cpus': os.cpu_count(),
        'python': platform.python_version(), 'started': started_at,
        'load_start': load_start,
        'load_end': ', '.join(f'{value:.1f}' for value in os.getloadavg()),
        'total_seconds': time.perf_counter() - started, 'large_rows': args.large_rows,
        'token_budget': QUICK_TOKEN_BUDGET if args.quick else TOKEN_BUDGET,
        'epochs': ', '.join(f'{name} {QUICK_EPOCHS if args.quick else epochs}'
                            for name, epochs in FULL_EPOCHS.items()),
        'engine_iterations': 4 if args.quick else 8,
        'batch_pool': 30_000 if args.quick else 300_000,
        'llm_call_median': stats.median(call_seconds) if call_seconds else None,
        'llm_call_count': len(call_seconds),
        'llm_call_min': min(call_seconds) if call_seconds else None,
        'llm_call_max': max(call_seconds) if call_seconds else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f'speed{suffix}.json').write_text(
        json.dumps({'config': config, 'methods': results, 'engine': engine}, indent=1,
                   default=float) + '\n', encoding='utf-8')
    _write(results, engine, config, args.out)
    return 0


def _write(results, engine, config, output):
    suffix = config['suffix']
    plot_engine(engine, config['llm_call_median'], output / f'speed{suffix}.png')
    text = render(results, engine, config)
    (output / f'speed{suffix}.md').write_text(text, encoding='utf-8')
    print(text)
    print(f"wrote {output / f'speed{suffix}.md'}", file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
