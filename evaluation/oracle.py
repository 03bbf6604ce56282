"""ORACLE benchmark: what a capable model buys, and how robust the engine stays when it is bad.

The LLM is replaced by an *oracle* (:mod:`evaluation.oracle_server`): an OpenAI-compatible HTTP
server on localhost, started here in a thread on a free port, that answers the planners' own
prompts with *real records held out from the spec*, sampled conditional on the anchors, in
the JSON schema of the request. A corruption knob replaces a share of the fields it writes by
random valid values (0, 10, 30, 60, 100%). The synthesizers reach it through the package's
real client path (``OpenAICompatibleClient``: the ``openai`` package, the structured-output
fallback ``json_schema`` -> ``json_object`` and the retries): on the PSRC runs the server
rejects ``json_schema`` as llama.cpp's server does, and every run's server answers every 20th
request with HTTP 503, which the client retries.

The oracle is not a model: it is an upper bound (a model that knows the population's real
conditional distributions) and, corrupted, a model that follows the schema but not reality.

Datasets:

- **E-commerce** (the paper's Bayesian network, ``sdv_llmsynthor.evaluation.ecommerce_bn``):
  2,000 reference rows (seed ``s``) give the spec (:func:`evaluation.ecommerce.
  derive_reference_spec`, *marginals* and *marginals + joints*); the oracle samples from
  20,000 other rows of the network (seed ``s + 3000``).
- **PSRC 2014 households and persons** (:mod:`evaluation.population`): the households are split
  at random in two halves; the spec is derived from one (``build_spec``, base targets) *without*
  the household rules this benchmark measures (:data:`UNDECLARED_RULES`); the oracle samples
  households, with their persons, from the other half.

Methods per dataset: the anchored planner with the package defaults (``anchored``), the
anchored planner with 8 completions per anchor, no reuse of stored completions and no
statistical share (``anchored-fresh``: every record from the model), and the free planner
(the paper's prompt), each against the oracle at every corruption level; the statistical
planner (no LLM) and the embedded SmolLM2-135M (``llm='local'``, anchored defaults, stopped by
a token budget, then the statistical planner finishes) as reference points.

Metrics: fidelity to the spec (mean TVD over the spec's statistics, ``fidelity_report``);
whole-row C2ST gap (gradient boosting, ``metrics.c2st_gap``) against the rows the spec was
derived from; held-out statistics not in the spec (e-commerce: the network's three joints,
which only the *marginals + joints* spec holds, and the mean per-category Wasserstein of price
and age, held by neither; PSRC: the mean relative error of the 14 policy queries, which hinge
on who lives with whom); realism on PSRC with rules NOT declared in the spec
(:data:`UNDECLARED_RULES`).

Run from the repository root::

    python -m evaluation.oracle --quick     # e-commerce + 400 PSRC households, 0% and 100%
    python -m evaluation.oracle             # every level, SmolLM2 points (~20 min, 2 cores)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import _psrc
from evaluation.oracle_server import CORRUPTION_LEVELS, OracleData, OracleServer

DEFAULT_OUTPUT = Path('evaluation') / 'results'
POOL_ROWS = 20_000
POOL_SEED_OFFSET = 3000
FAIL_EVERY = 20
ECOMMERCE_ROWS = 2000
PSRC_SPEC_HOUSEHOLDS = 1500
QUICK_PSRC_SPEC_HOUSEHOLDS = 400
UNDECLARED_RULES = ('one_householder', 'couple_two_adults', 'age_education_minor',
                    'age_education_adult')
"""Rules of :mod:`evaluation._psrc` removed from the spec, so that the engine does not reject
households breaking them: realism on them comes from the planner alone."""
PARENT_CHILD_GAP = 15.0
"""Years (band midpoints) a householder must be older than each of their children; the survey
breaks it in 0.45% of its children."""
SMOLLM_BUDGETS = {'ecommerce': 4000, 'psrc': 2500}
"""Token budgets of the embedded model's runs (one to three calls on this CPU)."""
PLANNER_LABELS = {
    'anchored': 'oracle, anchored (defaults)',
    'anchored-fresh': 'oracle, anchored (k=8, no reuse, no statistical share)',
    'free': 'oracle, free (paper prompt)',
}


def _planner(key, client):
    from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner

    if key == 'anchored-fresh':
        return AnchoredLLMPlanner(client, completions_per_anchor=8, reuse_completions=False,
                                  statistical_share=0.0)
    return key


def _client(server, label):
    from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient

    # A model name per run: the structured-output mode is remembered per endpoint and model.
    return OpenAICompatibleClient(model=f'oracle-{label}', base_url=server.base_url,
                                  api_key='oracle', timeout=30)


def _usage(synthesizer):
    usage = synthesizer.get_usage()
    return {'llm_calls': int(usage.get('llm_calls', 0)),
            'tokens': int(usage.get('prompt_tokens', 0) + usage.get('completion_tokens', 0))}


def _llm_share(synthesizer):
    """Share of the fit's proposals library written by the LLM (vs the statistical planner)."""
    try:
        library = synthesizer.get_library()
    except Exception:  # noqa: BLE001 - reporting only
        return float('nan')
    if isinstance(library, pd.DataFrame) and 'source' in library and 'selected' in library:
        selected = pd.to_numeric(library['selected'], errors='coerce').fillna(0)
        if selected.sum() > 0:
            return float(selected[library['source'] != 'statistical'].sum() / selected.sum())
    return float('nan')


# ------------------------------------------------------------------ e-commerce
def _conditional_wasserstein(real, synthetic, column, by):
    from sdv_llmsynthor.evaluation.metrics import wasserstein

    values = []
    for level in real[by].unique():
        left, right = real.loc[real[by] == level, column], synthetic.loc[synthetic[by] == level,
                                                                         column]
        if len(left) and len(right):
            values.append(wasserstein(left, right))
    return float(np.mean(values)) if values else float('nan')


def score_ecommerce(spec, metadata, reference, synthetic, seed):
    """Fidelity to the spec, whole-row C2ST and the held-out statistics of one run."""
    from evaluation import ecommerce
    from sdv_llmsynthor.evaluation.fidelity import fidelity_report
    from sdv_llmsynthor.evaluation.metrics import c2st_gap, joint_tvd

    synthetic = ecommerce._conform(synthetic)
    report = fidelity_report(spec, synthetic, metadata)
    scores = {'spec_mean_tvd': float(report.statistics['tvd'].mean()),
              'c2st_rows': c2st_gap(reference, synthetic, list(ecommerce.COLUMNS), seed=seed)}
    joints = [joint_tvd(reference, synthetic, columns, bins=bins)
              for columns, bins in ecommerce.JOINTS.values()]
    for name, value in zip(ecommerce.JOINTS, joints):
        scores[f'joint {name}'] = value
    scores['heldout_joint_mean_tvd'] = float(np.mean(joints))
    scores['W(price | category)'] = _conditional_wasserstein(reference, synthetic, 'price',
                                                             'product_category')
    scores['W(age | category)'] = _conditional_wasserstein(reference, synthetic, 'user_age',
                                                           'product_category')
    return scores


def run_ecommerce(spec_kind, levels, planners, seed, smollm_budget, log):
    """Every method on one e-commerce spec; returns a list of result rows."""
    from evaluation import ecommerce
    from sdv_llmsynthor.evaluation.ecommerce_bn import TABLE_NAME, sample_ecommerce
    from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

    metadata = ecommerce.load_metadata()
    reference = sample_ecommerce(ECOMMERCE_ROWS, seed)
    pool = sample_ecommerce(POOL_ROWS, seed + POOL_SEED_OFFSET)
    spec = ecommerce.derive_reference_spec(reference, metadata, spec_kind)
    rows = []

    def fit(planner, llm, token_budget=None):
        ecommerce._seed_everything(seed)
        synthesizer = LLMSynthorSynthesizer(
            metadata, spec=spec, planner=planner, llm=llm, num_rows=ECOMMERCE_ROWS,
            max_iterations=30, token_budget=token_budget, seed=seed, verbose=False)
        start = time.perf_counter()
        synthesizer.fit()
        synthetic = synthesizer.sample(num_rows=ECOMMERCE_ROWS)[TABLE_NAME]
        return synthesizer, synthetic, time.perf_counter() - start

    def record(method, corruption, synthesizer, synthetic, seconds, server=None):
        row = {'dataset': f'ecommerce ({spec_kind})', 'method': method,
               'corruption': corruption, 'seconds': round(seconds, 1), **_usage(synthesizer),
               'llm_share': _llm_share(synthesizer)}
        row.update(score_ecommerce(spec, metadata, reference, synthetic, seed))
        if server is not None:
            row['server'] = server.stats
        rows.append(row)
        log(row)

    synthesizer, synthetic, seconds = fit('statistical', None)
    record('statistical planner (no LLM)', None, synthesizer, synthetic, seconds)
    for key in planners:
        for corruption in levels:
            with OracleServer(OracleData({TABLE_NAME: pool}), corruption=corruption, seed=seed,
                              fail_every=FAIL_EVERY) as server:
                client = _client(server, f'{spec_kind}-{key}-{corruption}')
                synthesizer, synthetic, seconds = fit(_planner(key, client), client)
                record(PLANNER_LABELS[key], corruption, synthesizer, synthetic, seconds, server)
    if smollm_budget:
        synthesizer, synthetic, seconds = fit('anchored', ecommerce._make_client('local', seed),
                                              token_budget=smollm_budget)
        record(f'SmolLM2-135M, anchored ({smollm_budget:,}-token budget)', None, synthesizer,
               synthetic, seconds)
    return rows


# ------------------------------------------------------------------ PSRC
def undeclared_rule_rates(households, persons):
    """Rates of the rules the spec does not declare (households, and persons for education)."""
    summary = _psrc.household_summary(households, persons)
    midpoint = persons['age_band'].map(_psrc.AGE_MIDPOINTS)
    heads = persons[persons['relationship'] == 'Householder']
    head_age = heads.groupby('household_id')['age_band'].first().map(_psrc.AGE_MIDPOINTS)
    children = persons['relationship'] == 'Child'
    gap = persons['household_id'].map(head_age) - midpoint
    bad_gap = children & (gap < PARENT_CHILD_GAP)
    gap_households = set(persons.loc[bad_gap, 'household_id'])
    minors = persons['age_band'].isin(_psrc.CHILD_BANDS)
    bad_minor_edu = minors & (persons['education'] != _psrc.UNDER_18)
    bad_adult_edu = ~minors & (persons['education'] == _psrc.UNDER_18)
    edu_households = set(persons.loc[bad_minor_edu | bad_adult_edu, 'household_id'])
    ids = summary['household_id']
    failed = {
        'parent_child_age_gap': ids.isin(gap_households).to_numpy(),
        'one_householder': (summary['n_householders'] != 1).to_numpy(),
        'minors_education': ids.isin(edu_households).to_numpy(),
        'couple_two_adults': (summary['has_partner'] & (summary['n_adults'] < 2)).to_numpy(),
    }
    rates = {f'rule {name}': float(mask.mean()) for name, mask in failed.items()}
    rates['rule any (households)'] = float(np.logical_or.reduce(list(failed.values())).mean())
    rates['minors with adult education (persons)'] = (float(bad_minor_edu[minors].mean())
                                                      if minors.any() else float('nan'))
    return rates


SUMMARY_FEATURES = ['hh_size', 'vehicles', 'tenure', 'lifecycle', 'income_band',
                    'n_adults', 'n_children', 'n_elderly', 'n_employed', 'n_householders',
                    'has_partner', 'head_under35', 'head_65plus', 'has_graduate']


def _as_categories(frame):
    """Every column as text, whole numbers without a decimal point (``2``, not ``2.0``)."""
    from evaluation.population import _as_labels

    return _as_labels(frame)


def score_psrc(spec, metadata, real, households, persons, seed):
    """Fidelity to the spec, C2ST (households with their composition; persons with their
    household), mean relative error of the policy queries and the undeclared rules."""
    from sdv_llmsynthor.evaluation.fidelity import fidelity_report
    from sdv_llmsynthor.evaluation.metrics import c2st_gap

    scores = {'households_returned': len(households)}
    if len(households) < 5:
        return scores
    report = fidelity_report(spec, {'households': households, 'persons': persons}, metadata)
    scores['spec_mean_tvd'] = float(report.statistics['tvd'].mean())
    real_summary = _psrc.household_summary(real['households'], real['persons'])
    summary = _psrc.household_summary(households, persons)
    scores['c2st_households'] = c2st_gap(_as_categories(real_summary[SUMMARY_FEATURES]),
                                         _as_categories(summary[SUMMARY_FEATURES]), seed=seed)

    def person_rows(h, p):
        columns = ['household_id', 'hh_size', 'vehicles', 'tenure', 'lifecycle', 'income_band']
        merged = p.merge(h[columns], on='household_id', how='left')
        return _as_categories(merged.drop(columns=['household_id', 'person_id']))

    scores['c2st_persons'] = c2st_gap(person_rows(real['households'], real['persons']),
                                      person_rows(households, persons), seed=seed)
    real_queries = _psrc.evaluate_queries(real['households'], real['persons'])
    queries = _psrc.evaluate_queries(households, persons)
    errors = [_psrc.relative_error(real_queries[name], queries[name]) for name in queries]
    scores['query_mean_relative_error'] = float(np.nanmean(errors))
    scores.update(undeclared_rule_rates(households, persons))
    return scores


def split_psrc(data, spec_households, seed):
    """Two disjoint random sets of households: the spec's (``spec_households``) and the pool."""
    rng = np.random.default_rng(seed)
    ids = data['households']['household_id'].to_numpy()
    shuffled = rng.permutation(ids)
    half = len(ids) // 2
    spec_ids, pool_ids = shuffled[:min(spec_households, half)], shuffled[half:]

    def subset(keep):
        return {name: frame[frame['household_id'].isin(keep)].reset_index(drop=True)
                for name, frame in data.items()}

    return subset(spec_ids), subset(pool_ids)


def run_psrc(levels, planners, seed, spec_households, smollm_budget, log, data_dir):
    """Every method on the PSRC spec; returns a list of result rows."""
    from sdv.metadata import Metadata

    from evaluation import population
    from sdv_llmsynthor.evaluation.fidelity import add_derived_columns
    from sdv_llmsynthor.synthesizers import LLMSynthorMultiTableSynthesizer

    metadata = Metadata.load_from_json(str(_psrc.METADATA_PATH))
    data = _psrc.load_psrc(data_dir)
    real, pool = split_psrc(data, spec_households, seed)
    spec, _ = population.build_spec(real, metadata)
    for table in spec.tables.values():
        table.rules = [rule for rule in table.rules if rule.name not in UNDECLARED_RULES]
    pool_tables = add_derived_columns(spec, metadata, dict(pool))
    oracle_data = OracleData(pool_tables, parent='households', child='persons',
                             primary_key='household_id', foreign_key='household_id')
    num_households = len(real['households'])
    rows = []

    def fit(planner, llm, token_budget=None):
        np.random.seed(seed)
        synthesizer = LLMSynthorMultiTableSynthesizer(
            metadata, spec=spec, planner=planner, llm=llm, num_rows=num_households,
            pool_factor=3.0, max_iterations=25, token_budget=token_budget, seed=seed,
            verbose=False)
        start = time.perf_counter()
        synthesizer.fit()
        sample = synthesizer.sample(scale=1.0)
        return synthesizer, sample, time.perf_counter() - start

    def record(method, corruption, synthesizer, sample, seconds, server=None):
        row = {'dataset': 'PSRC households/persons', 'method': method,
               'corruption': corruption, 'seconds': round(seconds, 1), **_usage(synthesizer),
               'llm_share': _llm_share(synthesizer)}
        row.update(score_psrc(spec, metadata, real, sample['households'], sample['persons'],
                              seed))
        if server is not None:
            row['server'] = server.stats
        rows.append(row)
        log(row)

    survey = {'dataset': 'PSRC households/persons', 'method': 'survey (the spec households)',
              'corruption': None, **undeclared_rule_rates(real['households'], real['persons'])}
    rows.append(survey)
    log(survey)
    synthesizer, sample, seconds = fit('statistical', None)
    record('statistical planner (no LLM)', None, synthesizer, sample, seconds)
    for key in planners:
        for corruption in levels:
            with OracleServer(oracle_data, corruption=corruption, seed=seed,
                              reject_json_schema=True, fail_every=FAIL_EVERY) as server:
                client = _client(server, f'psrc-{key}-{corruption}')
                synthesizer, sample, seconds = fit(_planner(key, client), client)
                record(PLANNER_LABELS[key], corruption, synthesizer, sample, seconds, server)
    if smollm_budget:
        from sdv_llmsynthor.llm.local import LocalLlamaClient

        synthesizer, sample, seconds = fit('anchored', LocalLlamaClient(seed=seed, n_threads=1),
                                           token_budget=smollm_budget)
        record(f'SmolLM2-135M, anchored ({smollm_budget:,}-token budget)', None, synthesizer,
               sample, seconds)
    return rows


# ------------------------------------------------------------------ output
def _fmt(value, digits=3):
    if value is None:
        return '-'
    if isinstance(value, float):
        if not np.isfinite(value):
            return 'n/a'
        return f'{value:.{digits}f}'
    return str(value)


def _level(row):
    corruption = row.get('corruption')
    return '-' if corruption is None else f'{corruption:.0%}'


def _table(rows, columns):
    header = ['method', 'corruption'] + [label for label, _ in columns]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        cells = [row['method'], _level(row)] + [_fmt(row.get(key)) for _, key in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


ECOMMERCE_COLUMNS = [
    ('spec mean TVD', 'spec_mean_tvd'), ('C2ST gap (rows)', 'c2st_rows'),
    ('joint cat x age grp x gender', 'joint category x age group x gender'),
    ('joint price x cat', 'joint price (6 quantile bins) x category'),
    ('joint payment x tier', 'joint payment x tier'),
    ('W(price | cat)', 'W(price | category)'), ('W(age | cat)', 'W(age | category)'),
    ('LLM calls', 'llm_calls'), ('LLM share', 'llm_share'), ('seconds', 'seconds'),
]
PSRC_COLUMNS = [
    ('spec mean TVD', 'spec_mean_tvd'), ('C2ST households', 'c2st_households'),
    ('C2ST persons', 'c2st_persons'), ('queries mean RE', 'query_mean_relative_error'),
    ('parent-child gap', 'rule parent_child_age_gap'),
    ('one householder', 'rule one_householder'), ('minors education', 'rule minors_education'),
    ('couple 2 adults', 'rule couple_two_adults'), ('any rule', 'rule any (households)'),
    ('households', 'households_returned'), ('LLM calls', 'llm_calls'),
    ('LLM share', 'llm_share'), ('seconds', 'seconds'),
]


def _server_lines(rows):
    lines = ['| dataset | method | corruption | requests | json_schema rejected | '
             'json_object | HTTP 503 retried | answered | fields corrupted | relaxed anchors |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        stats = row.get('server')
        if not stats:
            continue
        answered = sum(v for k, v in stats.items() if k.startswith('answered_'))
        share = stats.get('fields_corrupted', 0) / max(stats.get('fields', 0), 1)
        lines.append(
            f"| {row['dataset']} | {row['method']} | {_level(row)} | {stats.get('requests', 0)}"
            f" | {stats.get('rejected_json_schema', 0)} | {stats.get('mode_json_object', 0)}"
            f" | {stats.get('transient_failures', 0)} | {answered}"
            f" | {share:.1%} of {stats.get('fields', 0):,} | {stats.get('relaxed_anchors', 0)}"
            ' |')
    return '\n'.join(lines)


def plot(rows, path):
    """Metrics against corruption: one line per oracle planner, statistical and SmolLM2 points."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [
        ('ecommerce (marginals)', 'spec_mean_tvd', 'spec mean TVD'),
        ('ecommerce (marginals)', 'c2st_rows', 'C2ST gap, whole rows'),
        ('ecommerce (marginals)', 'heldout_joint_mean_tvd', 'held-out: BN joints, mean TVD'),
        ('ecommerce (marginals + joints)', 'c2st_rows', 'C2ST gap, whole rows'),
        ('PSRC households/persons', 'spec_mean_tvd', 'spec mean TVD'),
        ('PSRC households/persons', 'c2st_households', 'C2ST gap, households'),
        ('PSRC households/persons', 'query_mean_relative_error',
         'held-out: policy queries, mean RE'),
        ('PSRC households/persons', 'rule any (households)',
         'undeclared rules: households failing'),
    ]
    figure, axes = plt.subplots(2, 4, figsize=(20, 9))
    styles = {'oracle, anchored (defaults)': ('tab:blue', 'o'),
              'oracle, anchored (k=8, no reuse, no statistical share)': ('tab:green', 's'),
              'oracle, free (paper prompt)': ('tab:purple', '^')}
    for axis, (dataset, key, title) in zip(axes.flat, panels):
        subset = [row for row in rows if row['dataset'] == dataset and key in row]
        for method, (color, marker) in styles.items():
            points = sorted((row['corruption'] * 100, row[key]) for row in subset
                            if row['method'] == method)
            if points:
                axis.plot(*zip(*points), color=color, marker=marker, label=method)
        extra = [row for row in subset if row['corruption'] is None]
        for position, row in enumerate(extra):
            x = 115 + 15 * position
            color = 'black' if row['method'].startswith('statistical') else (
                'tab:red' if row['method'].startswith('SmolLM2') else 'tab:gray')
            axis.scatter([x], [row[key]], color=color, marker='D', s=60, zorder=3,
                         label=row['method'])
        ticks = [0, 10, 30, 60, 100] + [115 + 15 * i for i in range(len(extra))]
        names = ['0', '10', '30', '60', '100'] + [
            'stat.' if r['method'].startswith('statistical') else
            ('SmolLM2' if r['method'].startswith('SmolLM2') else 'survey') for r in extra]
        axis.set_xticks(ticks)
        axis.set_xticklabels(names)
        axis.set_xlabel('oracle corruption (% of fields random)')
        axis.set_title(f'{dataset}\n{title}', fontsize=10)
        axis.grid(alpha=0.3)
    handles = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc='lower center', ncol=3,
                  fontsize=9)
    figure.suptitle('ORACLE endpoint (real held-out records, not a model): an upper bound of '
                    'what a capable LLM buys (0%) and robustness to a bad one (100%); '
                    'lower is better everywhere', fontsize=12)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    figure.savefig(path, dpi=90)
    plt.close(figure)


def render(rows, config):
    """The markdown report."""
    datasets = list(dict.fromkeys(row['dataset'] for row in rows))
    lines = [
        f"# ORACLE endpoint: LLM quality vs corruption{' (quick)' if config['quick'] else ''}",
        '',
        '**This is an oracle, not a model.** The LLM endpoint is `evaluation/oracle_server.py`: '
        'an OpenAI-compatible HTTP server on localhost that answers the planners\' own prompts '
        '(anchored, free) with *real records held out from the spec*, sampled conditional on '
        'the anchors, in the JSON schema of each request. At 0% corruption it is an upper bound '
        'of what a capable model can buy; at 100% every field it writes (outside the anchor\'s '
        'fixed values) is a random valid value: a model that obeys the schema and knows nothing. '
        'The synthesizers reach it through the package\'s real client path '
        '(`OpenAICompatibleClient`, the `openai` package, structured-output fallback, retries).',
        '',
        f"Command: `{config['command']}`; seed {config['seed']}; "
        f"{config['date']}; {config['seconds']:.0f} s in all; load average at start "
        f"{config['load']}. Method and metric details: the docstring of `evaluation/oracle.py`.",
        '',
        'Columns: *spec mean TVD* is the fidelity to the spec (mean over its statistics); '
        '*C2ST gap* |accuracy - 0.5| of a gradient-boosting classifier telling the synthetic '
        'rows from the rows the spec was derived from; *held-out* statistics are not in the spec '
        '(e-commerce: the network\'s joints are held out of the *marginals* spec only; the '
        'per-category Wasserstein distances of price and age are in neither; PSRC: the mean '
        'relative error of the 14 policy queries); *undeclared rules* are PSRC household rules '
        'removed from the spec (share of households failing; the engine does not reject them). '
        '*LLM share*: share of the records selected by calibration that came from LLM (oracle) '
        'proposals rather than the statistical planner. Lower is better in every metric column.',
        '',
    ]
    for dataset in datasets:
        subset = [row for row in rows if row['dataset'] == dataset]
        columns = PSRC_COLUMNS if dataset.startswith('PSRC') else ECOMMERCE_COLUMNS
        lines += [f'## {dataset}', '', _table(subset, columns), '']
    lines += [
        '## Requests seen by the oracle server',
        '',
        'PSRC runs: the server rejects `response_format: json_schema` with HTTP 500 and '
        'llama.cpp\'s message, so the client falls back to `json_object` (one rejection per run, '
        'then the mode is remembered). Every run: every '
        f'{FAIL_EVERY}th request gets HTTP 503, retried by the client. Token counts reported by '
        'the server are estimates (4 characters per token).',
        '',
        _server_lines(rows),
        '',
    ]
    return '\n'.join(lines)


def main(argv=None):
    """Run the benchmark and write ``evaluation/results/oracle[_quick].{md,json,png}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='corruption 0%% and 100%% only, 400 PSRC households, no SmolLM2')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument('--data', type=Path, default=_psrc.DEFAULT_PSRC_DIR)
    parser.add_argument('--planners', nargs='*', default=list(PLANNER_LABELS),
                        choices=list(PLANNER_LABELS))
    parser.add_argument('--datasets', nargs='*', default=['ecommerce', 'psrc'],
                        choices=['ecommerce', 'psrc'])
    parser.add_argument('--no-smollm', action='store_true',
                        help='skip the embedded SmolLM2 points (always skipped with --quick)')
    args = parser.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    logging.getLogger('httpx').setLevel(logging.WARNING)
    logging.getLogger('sdv_llmsynthor.llm.openai_compat').setLevel(logging.ERROR)
    levels = (0.0, 1.0) if args.quick else CORRUPTION_LEVELS
    smollm = not (args.quick or args.no_smollm)
    load = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    start = time.perf_counter()

    def log(row):
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                 if k != 'server'}
        print(json.dumps(shown, default=str), flush=True)

    rows = []
    if 'ecommerce' in args.datasets:
        for spec_kind in ('marginals', 'marginals + joints'):
            rows += run_ecommerce(spec_kind, levels, args.planners, args.seed,
                                  SMOLLM_BUDGETS['ecommerce'] if smollm and spec_kind ==
                                  'marginals' else None, log)
    if 'psrc' in args.datasets:
        rows += run_psrc(levels, args.planners, args.seed,
                         QUICK_PSRC_SPEC_HOUSEHOLDS if args.quick else PSRC_SPEC_HOUSEHOLDS,
                         SMOLLM_BUDGETS['psrc'] if smollm else None, log, args.data)
    argv_text = ' '.join(argv) if argv is not None else ' '.join(__import__('sys').argv[1:])
    config = {'quick': args.quick, 'seed': args.seed, 'load': load,
              'command': f'python -m evaluation.oracle {argv_text}'.strip(),
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'seconds': time.perf_counter() - start, 'levels': list(levels)}
    suffix = '_quick' if args.quick else ''
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f'oracle{suffix}.json').write_text(
        json.dumps({'config': config, 'rows': rows}, indent=1, default=str) + '\n',
        encoding='utf-8')
    (args.output / f'oracle{suffix}.md').write_text(render(rows, config), encoding='utf-8')
    plot(rows, args.output / f'oracle{suffix}.png')
    print(f"wrote {args.output / f'oracle{suffix}.md'} ({config['seconds']:.0f} s)")


if __name__ == '__main__':
    main()
