"""Households and persons experiment (LLMSynthor paper: Tables 3, 5, 6; appendices A.2, C.2).

Data: the PSRC 2014 household travel survey (``../shared/data/population/psrc_hts2014/``,
6,036 households and 12,198 persons of those households), recoded by
:func:`evaluation._psrc.load_psrc`. SDV metadata: ``metadata/psrc_households_persons.json``.

Schema (codes from the survey's ``dictionary/``):

- households: ``hh_size`` (1-8 persons), ``vehicles`` (0-10), ``tenure`` (Own; Rent; Other =
  provided by job or military, other, prefer not to answer), ``lifecycle`` (the survey's
  8-way household type: children under 5; children 5-17; single person by householder age
  under 35 / 35-64 / 65+; no children 2+ persons by the same ages), ``income_band`` (under
  $25k, $25k-$50k, $50k-$75k, $75k-$100k, $100k+, not reported).
- persons: ``age_band`` (the survey's 12 bands, 0-4 to 85+), ``gender``, ``relationship`` to
  the householder (Householder, Spouse/partner, Child, Parent, Sibling, Other relative,
  Non-relative = roommate, household help, other), ``employment`` (Full-time, Part-time,
  Self-employed, Not employed = volunteer, homemaker, not currently employed; Retired;
  Under 18), ``student`` (Not a student, Full-time, Part-time incl. vocational; Under 18),
  ``education`` (Less than high school, High school, Some college or associate incl.
  vocational, Bachelor, Graduate; Under 18). The survey did not ask employment, student
  status or education of persons under 18: they get the category ``Under 18``.

Targets (:func:`build_spec`, from the rows with :meth:`MacroSpec.from_data`): every household
and person marginal (household size distribution included), derived household columns
(persons per household and counts of adults, children, under-5s, elderly, employed,
householders; has a partner; householder under 35 / 65+), joints lifecycle x size, tenure x
income, vehicles x income, tenure x lifecycle, vehicles x employed members; person joints
age x employment, age x education, age x student, relationship x age, gender x employment.
``--composition`` adds census-style household composition joints (:data:`COMPOSITION_JOINTS`):
several policy queries (multigenerational households, elderly without a vehicle, children
without a vehicle, elderly poverty) hinge on who lives with whom, which the base targets only
constrain through marginals of the derived counts. Validity rules of :mod:`evaluation._psrc`
that hold on every survey row go into the spec.

Methods (all produce as many households as the reference):

- ``LLMSynthor (statistical)``: :class:`SynthesisLoop` with :class:`StatisticalPlanner` from
  the spec only (never sees rows). The engine regroups the persons of every batch of proposed
  households before checking them (``--methods llmsynthor-noregroup`` runs it without).
- ``LLMSynthor (anchored, embedded model)`` (``--methods anchored-local``): the anchored LLM
  planner with the embedded SmolLM2 model on one thread, stopped by ``--token-budget``.
- ``SDV HMA``: :class:`sdv.multi_table.HMASynthesizer` fitted on a random subset of the rows
  (``--hma-households``, default 1,000; 300 with ``--quick``): its fit time grows with the
  households.
- ``IPF (ipfn)``: households of a seed sample (``--ipf-seed-share`` of the rows, default 20%,
  as a census-microdata sample would be) are weighted with the ``ipfn`` package (list-based:
  each seed household is one row) to match household marginals and household counts of
  person types (workers, children, elderly) from the targets; weights are integerised
  (truncate, then draw the remainders) and the chosen households are copied with their
  persons.

Metrics: relative error of 14 of the paper's 16 policy queries (:data:`_psrc.QUERIES`; the
two racial ones need race), rejection rates per rule (:data:`_psrc.PERSON_RULES`,
:data:`_psrc.HOUSEHOLD_RULES`), marginal TVDs of every column, household size distribution and
joint TVDs of the target joints.

Run from the repository root::

    python -m evaluation.population --quick    # 800 households, few iterations, small HMA
    python -m evaluation.population            # all 6,036 households
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import _psrc
from sdv_llmsynthor.evaluation.metrics import joint_tvd, tvd

DEFAULT_OUTPUT = Path('evaluation') / 'results'
HOUSEHOLD_COLUMNS = ['hh_size', 'vehicles', 'tenure', 'lifecycle', 'income_band']
PERSON_COLUMNS = ['age_band', 'gender', 'relationship', 'employment', 'student', 'education']
HOUSEHOLD_JOINTS = [['hh_size', 'persons__count'], ['lifecycle', 'hh_size'],
                    ['tenure', 'income_band'], ['vehicles', 'income_band'], ['tenure', 'lifecycle'],
                    ['vehicles', 'n_employed']]
COMPOSITION_JOINTS = [['n_children', 'n_elderly'], ['vehicles', 'hh_size'],
                      ['income_band', 'hh_size'], ['tenure', 'head_under35', 'head_65plus']]
"""Household-composition joints of the kind census tables publish (``--composition``): presence
of children by presence of elderly (ACS B11007/B09016-like), vehicles by household size
(B08201), income by household size (B19019-like), tenure by householder age (B25007-like)."""
PERSON_JOINTS = [['age_band', 'employment'], ['age_band', 'education'],
                 ['age_band', 'student'], ['relationship', 'age_band'],
                 ['gender', 'employment']]
_CHILD = f'age_band in {_psrc._in(_psrc.CHILD_BANDS)}'
DERIVED = {
    'n_adults': {'child_table': 'persons', 'function': 'count', 'predicate': f'not ({_CHILD})'},
    'n_children': {'child_table': 'persons', 'function': 'count', 'predicate': _CHILD},
    'n_under5': {'child_table': 'persons', 'function': 'count', 'predicate': "age_band == '0-4'"},
    'n_elderly': {'child_table': 'persons', 'function': 'count',
                  'predicate': f'age_band in {_psrc._in(_psrc.ELDERLY_BANDS)}'},
    'n_employed': {'child_table': 'persons', 'function': 'count',
                   'predicate': f'employment in {_psrc._in(_psrc.EMPLOYED)}'},
    'n_householders': {'child_table': 'persons', 'function': 'count',
                       'predicate': "relationship == 'Householder'"},
    'has_partner': {'child_table': 'persons', 'function': 'any',
                    'predicate': "relationship == 'Spouse/partner'"},
    'head_under35': {'child_table': 'persons', 'function': 'any',
                     'predicate': "relationship == 'Householder' and age_band in "
                                  f'{_psrc._in(_psrc.UNDER_35_ADULT_BANDS)}'},
    'head_65plus': {'child_table': 'persons', 'function': 'any',
                    'predicate': "relationship == 'Householder' and age_band in "
                                 f'{_psrc._in(_psrc.ELDERLY_BANDS)}'},
}
CONTEXT = (
    'Households of the Puget Sound region (Seattle, Washington) and the persons living in '
    'them, from the Puget Sound Regional Council 2014 household travel survey. Employment, '
    'student status and education were not asked of persons under 18 (category "Under 18"). '
    'Lifecycle is the survey household type: children under 5, children 5-17, or no children '
    'by household size (1 or 2+) and householder age.'
)


def write_metadata(path: Path = _psrc.METADATA_PATH) -> None:
    """Write the SDV metadata of the recoded tables to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_psrc.metadata_dict(), indent=2) + '\n', encoding='utf-8')


def build_spec(data: dict[str, pd.DataFrame], metadata, composition: bool = False):
    """Derive the targets and add the validity rules that hold on every row of ``data``.

    With ``composition``, the household joints of :data:`COMPOSITION_JOINTS` are added.

    Returns:
        tuple[MacroSpec, list[str]]: the spec and the names of the rules it carries.
    """
    from sdv_llmsynthor.spec import MacroSpec
    from sdv_llmsynthor.spec.model import RuleSpec

    spec = MacroSpec.from_data(
        data, metadata, name='PSRC 2014 households and persons', context=CONTEXT,
        num_sub_bins=1, derived={'households': DERIVED},
        joints={'households': HOUSEHOLD_JOINTS + (COMPOSITION_JOINTS if composition else []),
                'persons': PERSON_JOINTS},
    )
    summary = _psrc.household_summary(data['households'], data['persons'])
    used = []
    for table_name, frame, rules in (('persons', data['persons'], _psrc.PERSON_RULES),
                                     ('households', summary, _psrc.HOUSEHOLD_RULES)):
        kept = []
        for name, expression, paper in rules:
            if _psrc._holds(expression, frame).all():
                kept.append(RuleSpec(name, expression, f'Paper: {paper}.'))
                used.append(name)
        spec.tables[table_name].rules = kept
    return spec, used


# ------------------------------------------------------------------ methods
def _loop_info(result) -> dict:
    """What a run of the loop reports: iterations, acceptance of proposed households, ..."""
    proposed = sum(entry['proposed'] for entry in result.history)
    added = sum(entry['records_added'] for entry in result.history)
    last = result.history[-1] if result.history else {}
    info = {'iterations': len(result.history), 'stopped_by': result.stopped_by,
            'unmet': len(result.unmet), 'engine_rejections': result.rejections,
            'households_returned': len(result.data['households']),
            'households_proposed': proposed,
            'acceptance': round(added / proposed, 3) if proposed else float('nan'),
            'regrouped_repaired': f"{last.get('households_repaired', 0)}/"
                                  f"{last.get('households_regrouped', 0)}"}
    if result.usage.get('llm_calls'):
        info['llm_calls'] = result.usage['llm_calls']
        info['tokens'] = (result.usage.get('prompt_tokens', 0)
                          + result.usage.get('completion_tokens', 0))
    return info


def run_llmsynthor(spec, metadata, num_households, max_iterations, seed, regroup=True,
                   pool_factor=3.0):
    """LLMSynthor multi-table with the statistical planner.

    ``pool_factor``: the pool aims at this many times the households before calibration. With
    a household as the unit, the calibration needs room to choose: on the quick subset, 3
    instead of the engine's default 1.2 halves the mean relative error of the queries.
    """
    from sdv_llmsynthor.core.loop import SynthesisLoop
    from sdv_llmsynthor.planners.statistical import StatisticalPlanner

    result = SynthesisLoop(spec, metadata, StatisticalPlanner(max_household_redraws=10),
                           num_rows=num_households, max_iterations=max_iterations, seed=seed,
                           progress=False, regroup=regroup, pool_factor=pool_factor).run()
    return result.data['households'], result.data['persons'], _loop_info(result)


def run_llmsynthor_anchored(spec, metadata, num_households, max_iterations, seed,
                            token_budget):
    """LLMSynthor multi-table with the anchored planner and the embedded model (1 thread)."""
    from sdv_llmsynthor.core.loop import SynthesisLoop
    from sdv_llmsynthor.llm.local import LocalLlamaClient
    from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner

    client = LocalLlamaClient(seed=seed, n_threads=1)
    result = SynthesisLoop(spec, metadata, AnchoredLLMPlanner(client), num_rows=num_households,
                           max_iterations=max_iterations, seed=seed, progress=False,
                           token_budget=token_budget, max_anchors=9).run()
    return result.data['households'], result.data['persons'], _loop_info(result)


def run_hma(data, metadata, num_households, seed, max_fit_households=1000):
    """SDV HMASynthesizer fitted on (at most ``max_fit_households`` of) the rows.

    HMA fits one child model per household, so its fit time grows with the households (about
    2 minutes for 800 on the shared machine): a random subset keeps it small.
    """
    from sdv.multi_table import HMASynthesizer

    np.random.seed(seed)
    households = data['households']
    if len(households) > max_fit_households:
        keep = households['household_id'].sample(max_fit_households, random_state=seed)
        data = {name: frame[frame['household_id'].isin(keep)].reset_index(drop=True)
                for name, frame in data.items()}
    synthesizer = HMASynthesizer(metadata, verbose=False)
    synthesizer.fit(data)
    sample = synthesizer.sample(num_rows=num_households, main_table_name='households')
    return sample['households'], sample['persons'], {
        'fit_households': len(data['households'])}


IPF_PERSON_DIMENSIONS = {'n_employed': 3, 'n_children': 3, 'n_elderly': 2}
"""Household counts of person types used as IPF dimensions, capped at this value (``k+``)."""


def _ipf_frame(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary[['household_id', 'tenure', 'lifecycle', 'income_band']].copy()
    frame['size'] = summary['hh_size'].clip(upper=5).astype(str)
    frame['veh'] = summary['vehicles'].clip(upper=4).astype(str)
    for column, cap in IPF_PERSON_DIMENSIONS.items():
        frame[column] = summary[column].clip(upper=cap).astype(str)
    # ipfn looks up every combination of the values of a multi-column dimension, present or
    # not: joints are therefore single combined columns.
    frame['lifecycle_size'] = frame['lifecycle'] + ' | ' + frame['size']
    frame['tenure_income'] = frame['tenure'] + ' | ' + frame['income_band']
    # ipfn 1.4.4 indexes a one-column dimension with a 1-tuple, which pandas 2 reads as
    # (row, column): a constant second column keeps every dimension a MultiIndex.
    frame['all'] = 'all'
    return frame


def run_ipf(data, targets_data, num_households, seed, seed_share=0.2):
    """IPF with ``ipfn`` on a seed sample, integerised, households copied with their persons.

    Args:
        data (dict): the rows the seed sample is drawn from.
        targets_data (dict): the rows the targets are computed from (marginals only are used).
        num_households (int): households to produce.
        seed (int): random seed.
        seed_share (float): share of households in the seed sample.
    """
    from ipfn import ipfn

    rng = np.random.default_rng(seed)
    households, persons = data['households'], data['persons']
    seed_ids = rng.choice(households['household_id'].to_numpy(),
                          size=max(int(round(seed_share * len(households))), 1), replace=False)
    seed_h = households[households['household_id'].isin(seed_ids)]
    seed_frame = _ipf_frame(_psrc.household_summary(
        seed_h, persons[persons['household_id'].isin(seed_ids)]))
    target_frame = _ipf_frame(_psrc.household_summary(targets_data['households'],
                                                      targets_data['persons']))
    scale = num_households / len(target_frame)
    dimensions = [[column, 'all'] for column in (
        'size', 'veh', 'tenure', 'lifecycle', 'income_band', 'lifecycle_size', 'tenure_income',
        *IPF_PERSON_DIMENSIONS)]
    aggregates = [target_frame.groupby(dims).size().astype(float) * scale for dims in dimensions]
    frame = seed_frame.copy()
    frame['total'] = 1.0
    # ipfn leaves cells of a target absent from the seed at zero: drop those target cells so
    # that the other marginals stay reachable.
    aggregates = [agg.reindex(frame.groupby(dims).size().index, fill_value=0.0)
                  for agg, dims in zip(aggregates, dimensions)]
    aggregates = [agg / agg.sum() * num_households for agg in aggregates]
    weighted = ipfn.ipfn(frame, aggregates, dimensions, weight_col='total',
                         max_iteration=50, convergence_rate=1e-5).iteration()
    weights = weighted['total'].to_numpy()
    ipf_gap = max(float((weighted.groupby(dims)['total'].sum() - agg).abs().sum())
                  for agg, dims in zip(aggregates, dimensions)) / 2 / num_households
    copies = np.floor(weights).astype(int)
    remainder = num_households - copies.sum()
    if remainder > 0:
        fractions = weights - copies
        extra = rng.choice(len(weights), size=remainder, replace=False,
                           p=fractions / fractions.sum())
        copies[extra] += 1
    elif remainder < 0:
        drop = rng.choice(np.repeat(np.arange(len(copies)), copies), size=-remainder,
                          replace=False)
        np.subtract.at(copies, drop, 1)
    chosen = np.repeat(weighted['household_id'].to_numpy(), copies)
    new_ids = np.arange(1, len(chosen) + 1)
    out_h = (households.set_index('household_id').loc[chosen].reset_index()
             .assign(household_id=new_ids))
    mapping = pd.DataFrame({'household_id': chosen, 'new_id': new_ids})
    out_p = persons.merge(mapping, on='household_id').drop(columns='household_id').rename(
        columns={'new_id': 'household_id'})
    out_p['person_id'] = np.arange(1, len(out_p) + 1)
    return out_h, out_p[list(persons.columns)], {'seed_households': len(seed_h),
                                                 'ipf_max_tvd_before_rounding': round(ipf_gap, 4)}


# ------------------------------------------------------------------ metrics
def _as_labels(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(
                out[column]):
            out[column] = out[column].round().astype('Int64')
    return out.astype(str)


def fidelity(real, households, persons) -> dict[str, float]:
    """Marginal TVDs, household size TVD and joint TVDs of the target joints."""
    out = {}
    real_summary = _as_labels(_psrc.household_summary(real['households'], real['persons']))
    summary = _as_labels(_psrc.household_summary(households, persons))
    for column in HOUSEHOLD_COLUMNS:
        out[f'households.{column}'] = tvd(real_summary[column].astype(str),
                                          summary[column].astype(str))
    out['persons per household (rows)'] = tvd(real_summary['persons__count'],
                                              summary['persons__count'])
    out['households with hh_size != persons'] = float(
        (summary['hh_size'] != summary['persons__count']).mean())
    for column in PERSON_COLUMNS:
        out[f'persons.{column}'] = tvd(real['persons'][column].astype(str),
                                       persons[column].astype(str))
    for columns in HOUSEHOLD_JOINTS:
        out['households ' + ' x '.join(columns)] = joint_tvd(
            real_summary[columns].astype(str), summary[columns].astype(str), columns)
    for columns in PERSON_JOINTS:
        out['persons ' + ' x '.join(columns)] = joint_tvd(
            real['persons'][columns].astype(str), persons[columns].astype(str), columns)
    return out


def _fmt(value, digits=4):
    if isinstance(value, (int, np.integer)):
        return f'{value:,}'
    if isinstance(value, float) and not np.isfinite(value):
        return 'n/a'
    if isinstance(value, float) and abs(value) >= 1000:
        return f'{value:,.0f}'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv=None) -> None:
    """Run the experiment and write ``evaluation/results/population[_quick].md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--data', type=Path, default=_psrc.DEFAULT_PSRC_DIR)
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ipf-seed-share', type=float, default=0.2)
    parser.add_argument('--hma-households', type=int, default=1000,
                        help='HMA is fitted on at most this many households (300 with --quick)')
    parser.add_argument('--methods', nargs='*', default=['llmsynthor', 'hma', 'ipf'],
                        help='any of llmsynthor, llmsynthor-noregroup (the engine without '
                             'household regrouping), anchored-local (the anchored planner with '
                             'the embedded model), hma, ipf')
    parser.add_argument('--pool-factor', type=float, default=3.0,
                        help='LLMSynthor pool size before calibration, in households requested')
    parser.add_argument('--composition', action='store_true',
                        help='add the census-style household composition joints '
                             '(COMPOSITION_JOINTS) to the spec')
    parser.add_argument('--name', default='population',
                        help='results file name (without _quick and .md)')
    parser.add_argument('--token-budget', type=int, default=60_000,
                        help='LLM token budget of anchored-local (it stops the loop)')
    args = parser.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from sdv.metadata import Metadata

    load_at_start = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    write_metadata()
    metadata = Metadata.load_from_json(str(_psrc.METADATA_PATH))
    data = _psrc.load_psrc(args.data)
    if args.quick:
        rng = np.random.default_rng(args.seed)
        keep = rng.choice(data['households']['household_id'], size=800, replace=False)
        data = {'households': data['households'][data['households']['household_id'].isin(keep)]
                .reset_index(drop=True),
                'persons': data['persons'][data['persons']['household_id'].isin(keep)]
                .reset_index(drop=True)}
    num_households = len(data['households'])
    spec, spec_rules = build_spec(data, metadata, composition=args.composition)

    runs = {}
    timings = {}
    infos = {}
    methods = {
        'llmsynthor': ('LLMSynthor (statistical)', lambda: run_llmsynthor(
            spec, metadata, num_households, 25 if args.quick else 60, args.seed,
            pool_factor=args.pool_factor)),
        'llmsynthor-noregroup': ('LLMSynthor (statistical, no regrouping)',
                                 lambda: run_llmsynthor(spec, metadata, num_households,
                                                        25 if args.quick else 60, args.seed,
                                                        regroup=False,
                                                        pool_factor=args.pool_factor)),
        'anchored-local': ('LLMSynthor (anchored, embedded model)',
                           lambda: run_llmsynthor_anchored(
                               spec, metadata, num_households, 8 if args.quick else 20,
                               args.seed, args.token_budget // (4 if args.quick else 1))),
        'hma': ('SDV HMA', lambda: run_hma(data, metadata, num_households, args.seed,
                                           300 if args.quick else args.hma_households)),
        'ipf': ('IPF (ipfn)', lambda: run_ipf(data, data, num_households, args.seed,
                                              args.ipf_seed_share)),
    }
    for key in args.methods:
        label, function = methods[key]
        start = time.perf_counter()
        try:
            households, persons, info = function()
        except Exception as error:  # noqa: BLE001 - a failing method is reported, not fatal
            print(f'{label} failed: {type(error).__name__}: {error}')
            infos[label] = {'error': f'{type(error).__name__}: {error}'}
            continue
        timings[label] = time.perf_counter() - start
        runs[label] = (households.reset_index(drop=True), persons.reset_index(drop=True))
        infos[label] = info
        print(f'{label}: {len(households)} households, {len(persons)} persons, '
              f'{timings[label]:.1f} s')

    labels = list(runs)
    real_queries = _psrc.evaluate_queries(data['households'], data['persons'])
    queries = {label: _psrc.evaluate_queries(*runs[label]) for label in labels}
    query_rows = []
    for name, (paper, _) in _psrc.QUERIES.items():
        row = [name, paper, real_queries[name]]
        for label in labels:
            row += [queries[label][name], _psrc.relative_error(real_queries[name],
                                                               queries[label][name])]
        query_rows.append(row)
    mean_re = ['mean relative error', '', '']
    for index in range(len(labels)):
        errors = [row[4 + 2 * index] for row in query_rows]
        mean_re += ['', float(np.nanmean(errors))]
    query_rows.append(mean_re)

    rejections = {'survey': _psrc.rejection_rates(data['households'], data['persons'])}
    rejections.update({label: _psrc.rejection_rates(*runs[label]) for label in labels})
    rejection_rows = []
    base = rejections['survey']
    for index in range(len(base)):
        row = [base.loc[index, 'level'], base.loc[index, 'rule']]
        row += [float(rejections[who].loc[index, 'rate']) for who in rejections]
        row.append('yes' if base.loc[index, 'rule'] in spec_rules else '')
        rejection_rows.append(row)

    fidelity_by = {label: fidelity(data, *runs[label]) for label in labels}
    fidelity_rows = [[metric] + [fidelity_by[label][metric] for label in labels]
                     for metric in (fidelity_by[labels[0]] if labels else {})]
    if labels:
        fidelity_rows.append(['mean'] + [float(np.mean(list(fidelity_by[label].values())))
                                         for label in labels])

    mode = ' --quick' if args.quick else ''
    lines = [
        f'# Households and persons (PSRC 2014){" — quick" if args.quick else ""}',
        '',
        f'Generated by `python -m evaluation.population{mode}` (seed {args.seed}). Reference: '
        f'{num_households:,} households, {len(data["persons"]):,} persons'
        f'{" (random subset)" if args.quick else ""}; every method produces '
        f'{num_households:,} households. Schema and method details: the docstring of '
        '`evaluation/population.py`; metadata `metadata/psrc_households_persons.json`.',
        '',
        'LLMSynthor sees only the targets (marginals, size distribution, derived counts, '
        'joints' + (' including the census-style composition joints '
                    + ', '.join(' x '.join(j) for j in COMPOSITION_JOINTS)
                    if args.composition else '')
        + ') and the rules marked "in spec"; HMA is fitted on a random subset of the rows '
        '(see notes: its fit time grows with households); IPF weights a '
        f'{args.ipf_seed_share:.0%} seed sample of households to the targets (`ipfn`): it '
        'copies real households, so their within-household structure comes for free. '
        'LLMSynthor\'s engine regroups the persons of each batch of proposed households '
        '(`sdv_llmsynthor.core.households`) before checking them; `acceptance` is the share of '
        'proposed households that pass the rules, `regrouped_repaired` how many of the '
        'households failing a check were repaired by regrouping (cumulative). Command: '
        f'`python -m evaluation.population{" --quick" if args.quick else ""} --methods '
        f'{" ".join(args.methods)}{" --composition" if args.composition else ""} '
        f'--pool-factor {args.pool_factor:g} --name '
        f'{args.name}`; date '
        f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; '
        f'load average at start {load_at_start}.',
        '',
        '| method | seconds | notes |',
        '|---|---|---|',
    ]
    for label, info in infos.items():
        notes = ', '.join(f'{k}={v}' for k, v in info.items() if k != 'engine_rejections')
        lines.append(f'| {label} | {_fmt(timings.get(label, float("nan")), 1)} | {notes} |')
    lines += [
        '',
        '## Policy queries (paper Table 5 style): value and relative error',
        '',
        'Adapted: income is a household band, so per-person income = band midpoint / size '
        '($150k for $100k+; "not reported" excluded); ages are band midpoints; "dual-earner '
        'couples" = householder and spouse/partner both employed, as a share of all households. '
        'Not expressible (no race): ' + '; '.join(
            f'`{k}` ({v})' for k, v in _psrc.UNSUPPORTED_QUERIES.items()) + '.',
        '',
        _table(['query', 'paper', 'survey'] + [f'{lab} {w}' for lab in labels
                                               for w in ('value', 'RE')], query_rows),
        '',
        '## Rejection rates per rule (paper Table 6 style)',
        '',
        'A household is rejected overall when one of its persons fails a person rule or it '
        'fails a household rule. "in spec": the rule holds on every survey row and was given '
        'to LLMSynthor (whose engine rejects records breaking it); other methods see no rules.',
        '',
        _table(['level', 'rule'] + list(rejections) + ['in spec'], rejection_rows),
        '',
        '## Fidelity: TVD to the survey (marginals, size distribution, target joints)',
        '',
        _table(['statistic'] + labels, fidelity_rows),
        '',
    ]
    suffix = '_quick' if args.quick else ''
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f'{args.name}{suffix}.md'
    path.write_text('\n'.join(lines), encoding='utf-8')
    print('\n'.join(lines))
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
