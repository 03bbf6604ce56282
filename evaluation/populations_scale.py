"""Scaling of the population engine: households x Dask workers on PSRC block groups.

The PSRC configuration of :mod:`evaluation.populations` with block groups as the lowest level
(2,017 zones; COUNTY > PUMA > TRACT > BG), at several reference sizes. Every run writes
partitioned Parquet through :func:`sdv_llmsynthor.geo.shards.synthesize_population_sharded`
with PUMA shards (about 16 per run), on a LocalCluster of 1 or 2 single-threaded worker
processes. Reported: wall
time, households per second, seconds per zone, the peak resident memory of every worker and of
the client, and the fit (median %RMSE over the controls at their own level), then a linear
extrapolation of the per-household cost to a national population (130M households).

Run: ``python -m evaluation.populations_scale --sizes 10000 100000 1000000 --workers 1 2``.
Writes ``evaluation/results/populations_scale.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluation.populations import RESULTS, write_psrc_folder
from sdv_llmsynthor.geo.shards import synthesize_population_sharded
from sdv_llmsynthor.spec.populationsim import load_populationsim

NATIONAL_HOUSEHOLDS = 130_000_000


def _worker_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(num_households: int, workers: int, root: Path, sweeps: int) -> dict:
    """One configuration size on one cluster size."""
    from distributed import Client, LocalCluster

    configs, data, _, _ = write_psrc_folder(root / f'config_{num_households}', num_households,
                                            block_groups=True)
    project = load_populationsim(configs, data)
    output = root / f'out_{num_households}_{workers}'
    shutil.rmtree(output, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit='8GiB', dashboard_address=None) as cluster, \
            Client(cluster) as client:
        started = time.perf_counter()
        result = synthesize_population_sharded(
            project.spec, project.metadata, project.households, project.persons,
            output_dir=output, weight_column=project.weight_column, shard_level='PUMA',
            max_households_per_shard=max(1_000, num_households // 16), client=client,
            sweeps=sweeps)
        seconds = time.perf_counter() - started
        worker_peaks = sorted(client.run(_worker_peak_mb).values())
    summary = result.summary()
    own = summary[~summary['aggregated']]
    rows = sum(shard['rows']['households'] for shard in result.manifest['shards'])
    persons = sum(shard['rows'].get('persons', 0) for shard in result.manifest['shards'])
    zones = len(project.spec.geography.rows)
    return {
        'households': num_households, 'workers': workers, 'zones': zones,
        'rows': rows, 'persons': persons, 'seconds': round(seconds, 2),
        'prepare_seconds': round(result.seconds['prepare'], 2),
        'households_per_second': round(rows / seconds, 1),
        'seconds_per_zone': round(seconds / zones, 4),
        'worker_peak_rss_mb': [round(v, 1) for v in worker_peaks],
        'client_peak_rss_mb': round(_worker_peak_mb(), 1),
        'median_pct_rmse': float(np.nanmedian(own['pct_rmse'])),
        'max_pct_rmse': float(np.nanmax(own['pct_rmse'])),
        'shards': len(result.manifest['shards']),
        'parquet_mb': round(sum(p.stat().st_size for p in output.rglob('*.parquet')) / 2**20,
                            1),
    }


def _markdown(rows: list[dict], command: str) -> str:
    lines = ['# Population engine scaling (PSRC block groups, Dask LocalCluster)', '',
             f'Command: `{command}`', '',
             '| households | workers | zones | persons | wall s | households/s | s/zone | '
             'worker peak MiB | client peak MiB | median %RMSE | max %RMSE |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(
            f"| {row['households']:,} | {row['workers']} | {row['zones']:,} | "
            f"{row['persons']:,} | {row['seconds']:.1f} | {row['households_per_second']:,.0f} |"
            f" {row['seconds_per_zone']:.3f} | "
            f"{', '.join(f'{v:.0f}' for v in row['worker_peak_rss_mb'])} | "
            f"{row['client_peak_rss_mb']:.0f} | {row['median_pct_rmse']:.2f} | "
            f"{row['max_pct_rmse']:.1f} |")
    largest = max(rows, key=lambda r: (r['households'], r['workers']))
    per_household = largest['seconds'] * largest['workers'] / largest['rows']
    lines += ['', f"Extrapolation: at the largest run's cost ({per_household * 1e3:.2f} ms of one "
              f"worker per household), {NATIONAL_HOUSEHOLDS / 1e6:.0f}M households take "
              f"{per_household * NATIONAL_HOUSEHOLDS / 3600:,.0f} worker-hours, "
              f"{per_household * NATIONAL_HOUSEHOLDS / 3600 / 100:,.1f} hours on 100 workers "
              '(shards are independent; linear in households at a fixed zone size).']
    return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
    """Run the grid and write evaluation/results/populations_scale.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000])
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--sweeps', type=int, default=1)
    parser.add_argument('--output', type=Path, default=RESULTS / 'populations_scale')
    parser.add_argument('--append', action='store_true',
                        help='add the rows to those already in the output file')
    args = parser.parse_args(argv)
    command = 'python -m evaluation.populations_scale ' + ' '.join(argv or sys.argv[1:])
    rows = []
    if args.append and args.output.with_suffix('.json').exists():
        rows = json.loads(args.output.with_suffix('.json').read_text())
        previous = args.output.with_suffix('.md').read_text().split('`')[1]
        command = f'{previous}; then {command}'
    with tempfile.TemporaryDirectory(prefix='population_scale_') as tmp:
        for size in args.sizes:
            for workers in args.workers:
                row = run(size, workers, Path(tmp), args.sweeps)
                rows.append(row)
                print(json.dumps(row), flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.with_suffix('.json').write_text(json.dumps(rows, indent=1))
                args.output.with_suffix('.md').write_text(_markdown(rows, command.strip()))
    print(f'wrote {args.output.with_suffix(".md")}')


if __name__ == '__main__':
    main()
