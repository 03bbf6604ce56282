"""Which error scale and borrowing price meet PSRC's controls best, against PopulationSim.

The PSRC configuration of :mod:`evaluation.populations` (20,000 reference households, three
levels) is synthesised by our CLI once per ``error_scale``, borrowing price and seed. Each run
is scored as that script scores it: %RMSE per control at its own level, and the held-out
composition statistics against the reference population. The peers are per-zone IPF, run here
on the same folder, and PopulationSim 0.10.0, whose scores are read from
``results/populations.json`` (the run of ``python -m evaluation.populations`` on the same
configuration, which is deterministic; PopulationSim itself needs its own virtual environment
and two to four minutes, and its figures move a little from run to run).

A control "worse than PopulationSim" is one whose %RMSE at its own level is above
PopulationSim's by more than 0.005 points (half the last digit the tables print).

Run: ``python -m evaluation.populations_error_scales`` (about 30 minutes; ``--configurations``
picks the error scales and borrowing prices). Writes
``evaluation/results/populations_error_scales.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from evaluation.populations import (
    _read_outputs,
    held_out,
    run_ipf,
    run_ours,
    score_controls,
    write_psrc_folder,
)
from sdv_llmsynthor.geo.engine import ERROR_SCALES

RESULTS = Path(__file__).resolve().parent / 'results'
LEVELS = ['COUNTY', 'PUMA', 'TRACT']
COMPOSITION = ['size_x_workers_tract_tvd', 'age_x_sex_county_tvd',
               'children_x_seniors_x_partner_county_tvd']
TOLERANCE = 0.005
# The defaults (rmse, 1) against the other scales, and cheaper borrowing: 0.02 counts of a
# tract cell is about the previous default (0.25 counts of the cheapest cell of any level).
DEFAULT_CONFIGURATIONS = ('rmse:1', 'relative:1', 'level:1', 'rmse:0.5', 'rmse:0.02')


def _configuration(text: str) -> tuple[str, float]:
    scale, _, price = text.partition(':')
    if scale not in ERROR_SCALES or not price:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected SCALE:PRICE with SCALE one of {', '.join(ERROR_SCALES)}")
    return scale, float(price)


def _own_level(scores) -> dict[str, float]:
    own = scores[scores['level'] == scores['geography']]
    return dict(zip(own['control'], own['pct_rmse'].astype(float)))


def _reference_scores(path: Path, households: int) -> dict:
    """PopulationSim's per-control %RMSE and held-out statistics from a populations run."""
    cases = json.loads(path.read_text())
    case = next((c for c in cases if c['name'] == f'psrc_{households}'), None)
    method = (case or {}).get('methods', {}).get('populationsim_0.10.0')
    if method is None or 'error' in method:
        raise SystemExit(f'{path} has no PopulationSim run of psrc_{households}: run '
                         '`python -m evaluation.populations` first.')
    own = {c['control']: float(c['pct_rmse']) for c in method['controls']
           if c['level'] == c['geography']}
    return {'controls': own, 'held_out': method['held_out'], 'persons': method['persons']}


def _score(folder: Path, configs: Path, data: Path, reference) -> dict:
    households, persons = _read_outputs(folder, configs, data, LEVELS)
    scores = score_controls(configs, data, households, persons)
    return {'controls': _own_level(scores),
            'held_out': held_out(reference[0].copy(), reference[1].copy(), households, persons),
            'persons': len(persons)}


def _compare(run: dict, popsim: dict) -> dict:
    worse = {name: value for name, value in run['controls'].items()
             if value > popsim['controls'][name] + TOLERANCE}
    return {'worse_than_populationsim': worse,
            'max_pct_rmse': max(run['controls'].values())}


def _markdown(runs: list[dict], ipf: dict, popsim: dict, command: str) -> str:
    short = {'size_x_workers_tract_tvd': 'size x workers (tract)',
             'age_x_sex_county_tvd': 'age x sex (county)',
             'children_x_seniors_x_partner_county_tvd': 'children x seniors x partner (county)'}
    lines = ['# PSRC 20k: our error scales against PopulationSim 0.10.0 and per-zone IPF', '',
             f'Command: `{command}`', '',
             'One row per run. "Worse" lists the controls whose %RMSE at their own level is '
             f'above PopulationSim\'s by more than {TOLERANCE} points. Composition columns are '
             'held-out TVDs against the reference population (lower is better).', '',
             '| scale | borrow price | seed | seconds | persons | borrowed households | '
             'controls worse than PopulationSim | '
             + ' | '.join(short[k] for k in COMPOSITION) + ' |',
             '|---|---|---|---|---|---|---|' + '---|' * len(COMPOSITION)]
    for run in runs:
        worse = ', '.join(f'{name} {value:.2f} (PopulationSim '
                          f"{popsim['controls'][name]:.2f})"
                          for name, value in run['worse_than_populationsim'].items()) or 'none'
        lines.append(f"| {run['scale']} | {run['borrow_price']:g} | {run['seed']} | "
                     f"{run['seconds']:.0f} | {run['persons']:,} | "
                     f"{run['borrowed_households']:,} | {worse} | "
                     + ' | '.join(f"{run['held_out'][k]:.4f}" for k in COMPOSITION) + ' |')
    for name, entry in (('ipf_per_zone', ipf), ('populationsim_0.10.0', popsim)):
        lines.append(f"| {name} | | | | {entry['persons']:,} | {0:,} | | "
                     + ' | '.join(f"{entry['held_out'][k]:.4f}" for k in COMPOSITION) + ' |')
    lines += ['', 'Median over seeds:', '',
              '| scale | borrow price | runs with every control within PopulationSim | '
              'median controls worse | median borrowed | '
              + ' | '.join(short[k] for k in COMPOSITION) + ' | below IPF on all three |',
              '|---|---|---|---|---|' + '---|' * len(COMPOSITION) + '---|']
    for scale, price in dict.fromkeys((run['scale'], run['borrow_price']) for run in runs):
        mine = [run for run in runs if (run['scale'], run['borrow_price']) == (scale, price)]
        clean = sum(not run['worse_than_populationsim'] for run in mine)
        medians = {k: float(np.median([run['held_out'][k] for run in mine]))
                   for k in COMPOSITION}
        below = all(medians[k] < ipf['held_out'][k] for k in COMPOSITION)
        lines.append(f'| {scale} | {price:g} | {clean} of {len(mine)} | '
                     f"{np.median([len(run['worse_than_populationsim']) for run in mine]):.0f} | "
                     f"{np.median([run['borrowed_households'] for run in mine]):,.0f} | "
                     + ' | '.join(f'{medians[k]:.4f}' for k in COMPOSITION)
                     + f" | {'yes' if below else 'no'} |")
    return '\n'.join(lines) + '\n'


def _plot(runs: list[dict], ipf: dict, popsim: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    for run in runs:
        run['_label'] = f"{run['scale']}, borrow {run['borrow_price']:g}"
    scales = list(dict.fromkeys(run['_label'] for run in runs))
    controls = list(popsim['controls'])
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    # Left: our %RMSE minus PopulationSim's, per control (worst seed), per scale.
    for position, scale in enumerate(scales):
        mine = [run for run in runs if run['_label'] == scale]
        excess = [max(run['controls'][name] for run in mine) - popsim['controls'][name]
                  for name in controls]
        offset = 0.6 * (position / max(len(scales) - 1, 1) - 0.5)
        axes[0].scatter(np.arange(len(controls)) + offset, excess, s=18, label=scale)
    axes[0].axhline(0, color='black', linewidth=0.8)
    axes[0].set_xticks(np.arange(len(controls)), controls, rotation=90, fontsize=7)
    axes[0].set_yscale('symlog', linthresh=1.0)
    axes[0].set_ylabel('our %RMSE - PopulationSim %RMSE (worst seed)')
    axes[0].set_title('controls at their own level (below 0: better)')
    axes[0].legend(fontsize=8)
    # Right: held-out composition per scale and seed, with the peers as lines.
    key = 'children_x_seniors_x_partner_county_tvd'
    for position, scale in enumerate(scales):
        values = [run['held_out'][key] for run in runs if run['_label'] == scale]
        axes[1].scatter(np.full(len(values), position), values, s=24)
    axes[1].axhline(ipf['held_out'][key], color='tab:red', linestyle='--',
                    label='per-zone IPF')
    axes[1].axhline(popsim['held_out'][key], color='tab:gray', linestyle=':',
                    label='PopulationSim 0.10.0')
    axes[1].set_xticks(range(len(scales)), scales, rotation=20, fontsize=8)
    axes[1].set_ylabel('TVD against the reference (lower is better)')
    axes[1].set_title('held out: children x seniors x partner per county')
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    for run in runs:
        run.pop('_label')


def main(argv=None) -> None:
    """Run every scale and seed; write evaluation/results/populations_error_scales.*."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configurations', nargs='+', type=_configuration,
                        default=[_configuration(text) for text in DEFAULT_CONFIGURATIONS],
                        metavar='SCALE:PRICE',
                        help='error scale and borrow price (llmsynthor --error-scale, '
                             '--borrow-price) per configuration; default '
                             + ' '.join(DEFAULT_CONFIGURATIONS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument('--households', type=int, default=20_000)
    parser.add_argument('--reference', type=Path, default=RESULTS / 'populations.json',
                        help="a populations run with PopulationSim's scores of the same case")
    parser.add_argument('--output', type=Path, default=RESULTS / 'populations_error_scales')
    args = parser.parse_args(argv)
    command = 'python -m evaluation.populations_error_scales ' + ' '.join(argv or sys.argv[1:])
    popsim = _reference_scores(args.reference, args.households)
    runs = []
    with tempfile.TemporaryDirectory(prefix='error_scales_') as tmp:
        workdir = Path(tmp)
        configs, data, ref_hh, ref_per = write_psrc_folder(workdir / 'psrc', args.households)
        run_ipf(configs, data, workdir / 'ipf')
        ipf = _score(workdir / 'ipf', configs, data, (ref_hh, ref_per))
        for scale, price in args.configurations:
            for seed in args.seeds:
                out = workdir / f'{scale}_{price}_{seed}'
                timing = run_ours(configs, data, out, seed=seed, borrow_price=price,
                                  error_scale=scale)
                run = {'scale': scale, 'borrow_price': price, 'seed': seed,
                       'seconds': timing['seconds'],
                       'borrowed_households': timing['borrowed_households'],
                       **_score(out, configs, data, (ref_hh, ref_per))}
                run.update(_compare(run, popsim))
                runs.append(run)
                print(f"{scale} borrow {price:g} seed {seed}: {run['seconds']:.0f} s, "
                      f"{run['borrowed_households']:,} borrowed, worse than PopulationSim: "
                      f"{sorted(run['worse_than_populationsim']) or 'none'}, composition "
                      f"{run['held_out'][COMPOSITION[2]]:.4f}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix('.json').write_text(json.dumps(
        {'runs': runs, 'ipf_per_zone': ipf, 'populationsim_0.10.0': popsim}, indent=1,
        default=float))
    args.output.with_suffix('.md').write_text(_markdown(runs, ipf, popsim, command.strip()))
    _plot(runs, ipf, popsim, args.output.with_suffix('.png'))
    print(f'wrote {args.output.with_suffix(".md")}')


if __name__ == '__main__':
    main()
