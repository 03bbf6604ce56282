"""Multi-table synthesis of relational trees: LLMSynthor against SDV's HMA (and HSA), same data.

Issue 14, part 3. ``LLMSynthorMultiTableSynthesizer`` (statistical planner, no LLM; ``fit(data)``
derives the spec of every table) is compared with SDV's ``HMASynthesizer`` and
``HSASynthesizer`` on the same tables and the same SDV metadata, on two trees:

- ``psrc``: region > household > person, from the real PSRC 2014 household travel survey
  (``../shared/data/population/psrc_hts2014``, recoded by :mod:`evaluation._psrc`); the region is
  the survey's residence district (10 districts, with their county), and the households are a
  random subsample (1,500; ``--quick`` 300). The trips under ``../shared/data/mobility`` are
  from the 2017 survey, whose households are not those of 2014, so they cannot hang under these
  persons; the tree has three levels and one child per parent.
- ``web``: users > sessions > transactions and users > reviews (three levels, a parent with two
  children), drawn by the generator of the unit test of the tree synthesizer
  (``tests/unit/synthesizers/test_multi_table_tree.py``, imported, seed 0) with 1,000 users
  (``--quick`` 200): pro users have many sessions, free users few; desktop sessions have more
  purchases.

Measured per method and tree: ``fit`` seconds, ``sample`` seconds at scale 1.0, the overall score
and the properties of SDMetrics' multi-table ``QualityReport`` and ``DiagnosticReport`` (through
``sdv.evaluation.evaluate_quality`` / ``run_diagnostic``), for every relationship the shape of
the child counts per parent (mean, share of parents without a child, 90th percentile, and the
total variation distance between the real and the synthetic histograms of child counts), and key
validity (primary keys unique and not null, every foreign key found in its parent's primary key).
A method that fails (or is not installed: HSA is part of SDV Enterprise, not of the public
``sdv`` package) is recorded with its error and the run continues.

Run from the repository root::

    nice -n 10 python -m evaluation.multitable          # writes evaluation/results/multitable.*
    python -m evaluation.multitable --quick             # small trees, writes multitable_quick.*
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import _psrc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'evaluation' / 'results'
SEED = 0
METHODS = {
    'llmsynthor': 'LLMSynthor (statistical planner)',
    'hma': 'SDV HMASynthesizer',
    'hma_unchecked': 'SDV HMASynthesizer, depth check skipped',
    'hsa': 'SDV HSASynthesizer',
}


# ------------------------------------------------------------------ metric helpers (pure)
def child_counts(parent: pd.DataFrame, primary_key: str, child: pd.DataFrame,
                 foreign_key: str) -> pd.Series:
    """Number of child rows of every parent row (zero for parents without a child).

    Args:
        parent (pandas.DataFrame): The parent table.
        primary_key (str): Its primary key column.
        child (pandas.DataFrame): The child table.
        foreign_key (str): The child's column that refers to ``primary_key``.

    Returns:
        pandas.Series: Integer counts indexed by the parent's primary key. Child rows whose
        foreign key is not a parent key are not counted.
    """
    counts = child.groupby(foreign_key).size()
    return counts.reindex(parent[primary_key].to_numpy(), fill_value=0).astype('int64')


def count_tvd(real_counts, synthetic_counts) -> float:
    """Total variation distance between two histograms of child counts (one bin per count).

    Args:
        real_counts (array-like of int): Child counts per real parent.
        synthetic_counts (array-like of int): Child counts per synthetic parent.

    Returns:
        float: Half the L1 distance of the two normalised histograms, in [0, 1]; ``nan`` when
        either side has no parent.
    """
    real = pd.Series(np.asarray(real_counts, dtype='int64'))
    synthetic = pd.Series(np.asarray(synthetic_counts, dtype='int64'))
    if real.empty or synthetic.empty:
        return float('nan')
    real_share = real.value_counts(normalize=True)
    synthetic_share = synthetic.value_counts(normalize=True)
    support = real_share.index.union(synthetic_share.index)
    difference = real_share.reindex(support, fill_value=0.0) - synthetic_share.reindex(
        support, fill_value=0.0)
    return float(0.5 * difference.abs().sum())


def cardinality_shape(counts) -> dict:
    """Mean, share of zeros, 90th percentile and maximum of child counts per parent."""
    counts = np.asarray(counts, dtype='int64')
    if counts.size == 0:
        return {'parents': 0, 'mean': float('nan'), 'zero_share': float('nan'),
                'p90': float('nan'), 'max': 0}
    return {'parents': int(counts.size), 'mean': float(counts.mean()),
            'zero_share': float((counts == 0).mean()),
            'p90': float(np.percentile(counts, 90)), 'max': int(counts.max())}


def key_validity(data: dict, metadata: dict) -> dict:
    """Whether primary keys are unique and foreign keys resolve, per table and relationship.

    Args:
        data (dict[str, pandas.DataFrame]): The tables.
        metadata (dict): SDV metadata as a dict (``tables`` with ``primary_key``, and
            ``relationships``).

    Returns:
        dict: ``primary_keys``: table -> ``{'unique': bool, 'null': int}``; ``foreign_keys``:
        ``'parent>child'`` -> share of child rows whose key is a parent key (1.0 for an empty
        child); ``valid``: True when every primary key is unique without nulls and every
        foreign key share is 1.0.
    """
    primary_keys = {}
    for name, table in metadata['tables'].items():
        key = table.get('primary_key')
        if key is None:
            continue
        column = data[name][key]
        primary_keys[name] = {'unique': bool(column.dropna().is_unique),
                              'null': int(column.isna().sum())}
    foreign_keys = {}
    for relationship in metadata.get('relationships', []):
        parent = data[relationship['parent_table_name']][relationship['parent_primary_key']]
        child = data[relationship['child_table_name']][relationship['child_foreign_key']]
        share = float(child.isin(parent).mean()) if len(child) else 1.0
        foreign_keys[f"{relationship['parent_table_name']}>"
                     f"{relationship['child_table_name']}"] = share
    valid = (all(pk['unique'] and pk['null'] == 0 for pk in primary_keys.values())
             and all(share == 1.0 for share in foreign_keys.values()))
    return {'primary_keys': primary_keys, 'foreign_keys': foreign_keys, 'valid': bool(valid)}


def relationship_cardinality(real: dict, synthetic: dict, metadata: dict) -> list[dict]:
    """Real and synthetic child-count shapes and their TVD for every relationship."""
    rows = []
    for relationship in metadata.get('relationships', []):
        args = (relationship['parent_primary_key'], relationship['child_foreign_key'])
        parent, child = relationship['parent_table_name'], relationship['child_table_name']
        real_counts = child_counts(real[parent], args[0], real[child], args[1])
        synthetic_counts = child_counts(synthetic[parent], args[0], synthetic[child], args[1])
        rows.append({'relationship': f'{parent}>{child}',
                     'real': cardinality_shape(real_counts),
                     'synthetic': cardinality_shape(synthetic_counts),
                     'tvd': count_tvd(real_counts, synthetic_counts),
                     'synthetic_counts': synthetic_counts.tolist()})
    return rows


# ------------------------------------------------------------------ datasets
def psrc_tree(num_households: int, seed: int = SEED,
              directory: Path = _psrc.DEFAULT_PSRC_DIR) -> tuple[dict, dict]:
    """Region (district) > household > person from the PSRC 2014 survey, subsampled."""
    tables = _psrc.load_psrc(directory)
    raw = pd.read_csv(Path(directory) / 'households.csv', encoding='latin-1',
                      usecols=['hhid', 'h_district_name', 'h_county_name'])
    districts = raw[['h_district_name', 'h_county_name']].drop_duplicates(
        'h_district_name').sort_values('h_district_name').reset_index(drop=True)
    districts['region_id'] = np.arange(len(districts), dtype='int64')
    regions = pd.DataFrame({'region_id': districts['region_id'],
                            'county': districts['h_county_name']})
    region_of = raw.set_index('hhid')['h_district_name'].map(
        districts.set_index('h_district_name')['region_id'])
    households = tables['households'].copy()
    households.insert(1, 'region_id', households['household_id'].map(region_of).astype('int64'))
    rng = np.random.default_rng(seed)
    keep = rng.choice(households['household_id'].to_numpy(),
                      size=min(num_households, len(households)), replace=False)
    households = households[households['household_id'].isin(keep)].reset_index(drop=True)
    persons = tables['persons'][tables['persons']['household_id'].isin(keep)].reset_index(
        drop=True)
    metadata = _psrc.metadata_dict()
    metadata['tables']['regions'] = {'primary_key': 'region_id', 'columns': {
        'region_id': {'sdtype': 'id'}, 'county': {'sdtype': 'categorical'}}}
    metadata['tables']['households']['columns']['region_id'] = {'sdtype': 'id'}
    metadata['relationships'].insert(0, {
        'parent_table_name': 'regions', 'parent_primary_key': 'region_id',
        'child_table_name': 'households', 'child_foreign_key': 'region_id'})
    data = {'regions': regions, 'households': households, 'persons': persons}
    return data, metadata


def web_tree(num_users: int, seed: int = SEED) -> tuple[dict, dict]:
    """Users > sessions > transactions and users > reviews, the tree synthesizer's test data."""
    from tests.unit.synthesizers.test_multi_table_tree import _tree_data, _tree_metadata

    return _tree_data(num_users=num_users, seed=seed), _tree_metadata().to_dict()


def cut_tree(data: dict, metadata: dict, drop: set[str]) -> tuple[dict, dict]:
    """The same tree without the tables in ``drop`` (and the foreign keys that pointed there)."""
    relationships = [r for r in metadata['relationships']
                     if r['parent_table_name'] not in drop and r['child_table_name'] not in drop]
    dangling = {(r['child_table_name'], r['child_foreign_key'])
                for r in metadata['relationships']
                if r['parent_table_name'] in drop and r['child_table_name'] not in drop}
    tables = {}
    frames = {}
    for name, table in metadata['tables'].items():
        if name in drop:
            continue
        columns = {column: spec for column, spec in table['columns'].items()
                   if (name, column) not in dangling}
        tables[name] = {**table, 'columns': columns}
        frames[name] = data[name][list(columns)].copy()
    cut = {key: value for key, value in metadata.items() if key not in ('tables',
                                                                        'relationships')}
    return frames, {**cut, 'tables': tables, 'relationships': relationships}


def schema_depth(metadata: dict) -> int:
    """Number of tables on the longest root-to-leaf path (1 for tables without relations)."""
    children = {}
    for relationship in metadata.get('relationships', []):
        children.setdefault(relationship['parent_table_name'], []).append(
            relationship['child_table_name'])

    def depth(table):
        return 1 + max((depth(child) for child in children.get(table, [])), default=0)

    return max(depth(table) for table in metadata['tables'])


# ------------------------------------------------------------------ methods
def _synthesizer(method: str, metadata):
    if method == 'llmsynthor':
        from sdv_llmsynthor.synthesizers import LLMSynthorMultiTableSynthesizer

        return LLMSynthorMultiTableSynthesizer(metadata, planner='statistical', seed=SEED,
                                               verbose=False)
    if method == 'hma':
        from sdv.multi_table import HMASynthesizer

        return HMASynthesizer(metadata, verbose=False)
    if method == 'hma_unchecked':
        from sdv.multi_table import HMASynthesizer

        class UncheckedHMASynthesizer(HMASynthesizer):
            """HMA without its refusal of deeper schemas: does the algorithm itself cope?"""

            def _validate_schema_complexity(self):
                return None

        return UncheckedHMASynthesizer(metadata, verbose=False)
    from sdv.multi_table import HSASynthesizer  # SDV Enterprise; ImportError in public sdv

    return HSASynthesizer(metadata, verbose=False)


def _sample(method: str, synthesizer):
    if method == 'llmsynthor':
        return synthesizer.sample(scale=1.0)
    return synthesizer.sample_scale(scale=1.0)


def _nan_property_errors(report) -> dict:
    """The first error SDMetrics recorded for every property whose score is NaN."""
    notes = {}
    for _, row in report.get_properties().iterrows():
        if not np.isnan(row['Score']):
            continue
        try:
            details = report.get_details(row['Property'])
        except Exception as error:  # noqa: BLE001 - no details for this property
            notes[row['Property']] = f'no details: {error}'
            continue
        errors = details['Error'].dropna() if 'Error' in details else pd.Series(dtype=str)
        if len(errors):
            notes[row['Property']] = str(errors.iloc[0])[:200]
        elif 'Meets Threshold?' in details and not details['Meets Threshold?'].any():
            strongest = details['Real Association'].max()
            notes[row['Property']] = (
                f'no pair of the {len(details)} has a real association above SDMetrics\' '
                f'threshold (strongest {strongest:.3f}); such pairs are not scored')
        else:
            notes[row['Property']] = f'{len(details)} detail rows, no error recorded'
    return notes


def run_method(method: str, data: dict, metadata_dict: dict) -> dict:
    """Fit, sample at scale 1.0 and evaluate one method; failures are recorded, not raised."""
    from sdv.metadata import Metadata

    from sdv_llmsynthor.evaluation.sdmetrics_reports import run_sdmetrics_reports

    result = {'method': method, 'label': METHODS[method], 'error': None}
    metadata = Metadata.load_from_dict(metadata_dict)
    stage = 'init'
    try:
        np.random.seed(SEED)
        synthesizer = _synthesizer(method, metadata)
        stage = 'fit'
        started = time.perf_counter()
        synthesizer.fit({name: frame.copy() for name, frame in data.items()})
        result['fit_seconds'] = time.perf_counter() - started
        stage = 'sample'
        started = time.perf_counter()
        synthetic = _sample(method, synthesizer)
        result['sample_seconds'] = time.perf_counter() - started
        stage = 'evaluate'
        result['rows'] = {name: len(frame) for name, frame in synthetic.items()}
        result['keys'] = key_validity(synthetic, metadata_dict)
        result['cardinality'] = relationship_cardinality(data, synthetic, metadata_dict)
        reports = run_sdmetrics_reports(data, synthetic, metadata)
        result['quality'] = reports.quality_score
        result['quality_properties'] = {
            row['Property']: float(row['Score'])
            for _, row in reports.quality.get_properties().iterrows()}
        result['quality_notes'] = _nan_property_errors(reports.quality)
        result['diagnostic'] = reports.diagnostic_score
        result['diagnostic_properties'] = {
            row['Property']: float(row['Score'])
            for _, row in reports.diagnostic.get_properties().iterrows()}
    except Exception as error:  # noqa: BLE001 - record and continue with the next method
        message = re.sub(r'/\S*/site-packages/', '<site-packages>/', str(error))
        result['error'] = f'{stage}: {type(error).__name__}: {message}'.splitlines()[0][:300]
        result['traceback'] = re.sub(r'/\S*/site-packages/', '<site-packages>/',
                                     traceback.format_exc(limit=3)).replace(f'{ROOT}/', '')
    return result


# ------------------------------------------------------------------ report
def _fmt(value, pattern='{:.3f}'):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ''
    return pattern.format(value)


def _real_rows(data):
    return ', '.join(f'{name} {len(frame):,}' for name, frame in data.items())


def _markdown(runs, datasets, args, load, started_at, elapsed):
    command = 'python -m evaluation.multitable' + (' --quick' if args.quick else '')
    lines = [
        '# Multi-table trees: LLMSynthor vs SDV HMA / HSA', '',
        f'Generated by `{command}` on {platform.platform()}, {os.cpu_count()} CPUs (shared), '
        f'python {platform.python_version()}; started {started_at}, load average then {load}; '
        f'{elapsed / 60:.1f} min in all. Every method fits the same real tables with the same '
        'SDV metadata and samples at scale 1.0 (as many root rows as the real data). LLMSynthor '
        'uses `planner="statistical"` (no LLM) and derives its spec with `fit(data)`. Quality and '
        'diagnostic are SDMetrics\' multi-table reports (`sdv.evaluation`). Child-count TVD is '
        'the total variation distance between the real and the synthetic histograms of the '
        'number of children per parent (0 is identical).', '',
    ]
    for name, (data, metadata) in datasets.items():
        relationships = [f"{r['parent_table_name']}>{r['child_table_name']}"
                         for r in metadata['relationships']]
        lines += [f'## {name}: {", ".join(relationships)}', '',
                  f'Real rows: {_real_rows(data)}.', '',
                  '| method | fit | sample | quality | column shapes | column pair trends | '
                  'cardinality | intertable trends | diagnostic | keys valid | rows |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        dataset_runs = [run for run in runs if run['dataset'] == name]
        for run in dataset_runs:
            if run['error'] and 'quality' not in run:
                lines.append(f"| {run['label']} | failed: {run['error']} |||||||||| ")
                continue
            properties = run['quality_properties']
            rows = ', '.join(f'{value:,}' for value in run['rows'].values())
            lines.append(
                f"| {run['label']} | {run['fit_seconds']:.1f} s | {run['sample_seconds']:.1f} s | "
                f"{run['quality']:.3f} | {_fmt(properties.get('Column Shapes'))} | "
                f"{_fmt(properties.get('Column Pair Trends'))} | "
                f"{_fmt(properties.get('Cardinality'))} | "
                f"{_fmt(properties.get('Intertable Trends'))} | {run['diagnostic']:.3f} | "
                f"{'yes' if run['keys']['valid'] else 'NO'} | {rows} |")
        lines += ['', 'Children per parent (real, then each method): mean, share of parents '
                  'without a child, 90th percentile; TVD of the child-count histogram.', '',
                  '| relationship | method | mean | zero share | p90 | max | TVD |',
                  '|---|---|---|---|---|---|---|']
        for index, relationship in enumerate(relationships):
            real_shape = None
            for run in dataset_runs:
                if 'cardinality' not in run:
                    continue
                card = run['cardinality'][index]
                if real_shape is None:
                    real_shape = card['real']
                    lines.append(
                        f"| {relationship} | real | {real_shape['mean']:.2f} | "
                        f"{real_shape['zero_share']:.3f} | {real_shape['p90']:.0f} | "
                        f"{real_shape['max']} | |")
                shape = card['synthetic']
                lines.append(
                    f"| {relationship} | {run['label']} | {shape['mean']:.2f} | "
                    f"{shape['zero_share']:.3f} | {shape['p90']:.0f} | {shape['max']} | "
                    f"{card['tvd']:.3f} |")
        failed = [run for run in dataset_runs if run['error']]
        if failed:
            lines += ['', 'Errors:', '']
            lines += [f"- {run['label']}: `{run['error']}`" for run in failed]
        notes = [(run['label'], prop, note) for run in dataset_runs
                 for prop, note in run.get('quality_notes', {}).items()]
        if notes:
            lines += ['', 'Quality properties SDMetrics scored NaN (left out of its average):', '']
            lines += [f'- {label}, {prop}: `{note}`' for label, prop, note in notes]
        lines.append('')
    return '\n'.join(lines) + '\n'


def _plot(runs, datasets, path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = []
    for name, (data, metadata) in datasets.items():
        for index, relationship in enumerate(metadata['relationships']):
            panels.append((name, index, relationship, data))
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows),
                                squeeze=False)
    for axis, (name, index, relationship, data) in zip(axes.ravel(), panels):
        parent, child = relationship['parent_table_name'], relationship['child_table_name']
        real = child_counts(data[parent], relationship['parent_primary_key'], data[child],
                            relationship['child_foreign_key']).to_numpy()
        series = [('real', real)]
        for run in runs:
            if run['dataset'] == name and 'cardinality' in run:
                series.append((run['label'], np.asarray(
                    run['cardinality'][index]['synthetic_counts'])))
        top = max(int(np.percentile(values, 99)) if len(values) else 0 for _, values in series)
        width = max(1, int(np.ceil((top + 1) / 25)))
        bins = np.arange(0, top + width + 1, width) - 0.5
        tvds = {run['label']: run['cardinality'][index]['tvd'] for run in runs
                if run['dataset'] == name and 'cardinality' in run}
        for label, values in series[1:] + series[:1]:  # real last, on top
            is_real = label == 'real'
            axis.hist(np.clip(values, None, top), bins=bins, density=True, histtype='step',
                      linewidth=1.2 if is_real else 2.2, linestyle='--' if is_real else '-',
                      color='black' if is_real else None,
                      label=label if is_real else f'{label} (TVD {tvds[label]:.2f})')
        axis.set_title(f'{name}: rows of {child} per row of {parent}', fontsize=9)
        axis.set_xlabel('children per parent (top 1% clipped)', fontsize=8)
        axis.legend(fontsize=6)
        axis.grid(True, alpha=0.3)
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    """Run the comparison and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='300 households and 200 users; writes multitable_quick.*')
    parser.add_argument('--households', type=int)
    parser.add_argument('--users', type=int)
    parser.add_argument('--psrc-dir', type=Path, default=_psrc.DEFAULT_PSRC_DIR)
    parser.add_argument('--methods', nargs='+', choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    households = args.households or (300 if args.quick else 1500)
    users = args.users or (200 if args.quick else 1000)
    load = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    started_at = time.strftime('%Y-%m-%d %H:%M')
    started = time.perf_counter()
    psrc = psrc_tree(households, directory=args.psrc_dir)
    web = web_tree(users)
    datasets = {'psrc': psrc, 'psrc, two levels': cut_tree(*psrc, drop={'regions'}),
                'web': web, 'web, two levels': cut_tree(*web, drop={'transactions'})}
    runs = []
    for name, (data, metadata) in datasets.items():
        for method in args.methods:
            if method == 'hma_unchecked' and schema_depth(metadata) <= 2:
                continue  # the same as 'hma' where HMA's own check lets the schema through
            print(f'{name}: {METHODS[method]} ...', file=sys.stderr, flush=True)
            run = run_method(method, data, metadata)
            run['dataset'] = name
            print(f"  fit {run.get('fit_seconds', float('nan')):.1f} s, quality "
                  f"{run.get('quality', float('nan')):.3f}, error {run['error']}",
                  file=sys.stderr, flush=True)
            runs.append(run)
    elapsed = time.perf_counter() - started
    text = _markdown(runs, datasets, args, load, started_at, elapsed)
    print(text)
    stem = 'multitable_quick' if args.quick else 'multitable'
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f'{stem}.md').write_text(text, encoding='utf-8')
    (RESULTS / f'{stem}.json').write_text(json.dumps({
        'started_at': started_at, 'load_average': load, 'elapsed_seconds': elapsed,
        'households': households, 'users': users, 'runs': runs}, indent=1, default=str),
        encoding='utf-8')
    _plot(runs, datasets, RESULTS / f'{stem}.png')
    print(f'wrote evaluation/results/{stem}.{{md,json,png}}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
