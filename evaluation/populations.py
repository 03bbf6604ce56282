"""Populations for real places: ours, PopulationSim 0.10.0 and per-zone IPF on the same controls.

Two PopulationSim configurations, both read unchanged by every method:

- ``example_test``: PopulationSim's own example (shared data), four levels, 36 TAZs. Its
  controls are infeasible by construction (docs/design/geography.md, section 0), so nobody
  meets all of them: the comparison is the size of the error.
- ``psrc``: written by this script from the PSRC 2014 household travel survey. A reference
  population (every survey household replicated in its tract by its expansion weight, scaled to
  ``--households``) gives the controls: COUNTY > PUMA > TRACT, households and size and
  vehicles and tenure per tract, workers, income and persons by age and sex per PUMA,
  employment and students per county. The seed is a 30% sample of the survey per PUMA
  (weights divided by 0.3), located by PUMA only. Statistics that are *not* controls
  (household size x workers per tract, age x sex per county, persons per household by age
  group, children without adults) are compared with the reference: they show whether the
  households are plausible, not only the margins.

Metrics per control (a row of controls.csv), at its geography, over zones: RMSE, %RMSE
(``100 * RMSE / mean control``, PopulationSim's validation figure), and the same control summed
at every level above it. Wall time and peak memory are the child process's (``os.wait4``).

Run: ``python -m evaluation.populations`` (``--skip-populationsim`` without PopulationSim's
virtual environment). Writes ``evaluation/results/populations.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.populationsim_runner import run_measured, run_populationsim
from sdv_llmsynthor.geo.engine import ERROR_SCALES
from sdv_llmsynthor.spec.geography import canonical_zone
from sdv_llmsynthor.spec.populationsim import _evaluate, _parse, _read_tables, _read_yaml

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPOSITORY_ROOT.parent / 'shared' / 'data'
EXAMPLE = SHARED / 'populationsim' / 'example_test'
PSRC_DIR = SHARED / 'population' / 'psrc_hts2014'
RESULTS = REPOSITORY_ROOT / 'evaluation' / 'results'


# ------------------------------------------------------------------ the PSRC configuration
PSRC_CONTROLS = """\
target,geography,seed_table,importance,control_field,expression
num_hh,TRACT,households,1000000000,HHBASE,(households.WGTP > 0) & (households.WGTP < np.inf)
hh_size_1,TRACT,households,1000,HHSIZE1,households.NP == 1
hh_size_2,TRACT,households,1000,HHSIZE2,households.NP == 2
hh_size_3,TRACT,households,1000,HHSIZE3,households.NP == 3
hh_size_4_plus,TRACT,households,1000,HHSIZE4,households.NP >= 4
veh_0,TRACT,households,1000,VEH0,households.VEH == 0
veh_1,TRACT,households,1000,VEH1,households.VEH == 1
veh_2,TRACT,households,1000,VEH2,households.VEH == 2
veh_3_plus,TRACT,households,1000,VEH3,households.VEH >= 3
owners,TRACT,households,1000,OWN,households.TEN == 1
workers_0,PUMA,households,1000,WRK0,households.WRK == 0
workers_1,PUMA,households,1000,WRK1,households.WRK == 1
workers_2,PUMA,households,1000,WRK2,households.WRK == 2
workers_3_plus,PUMA,households,1000,WRK3,households.WRK >= 3
income_1,PUMA,households,1000,INC1,households.INC == 1
income_2,PUMA,households,1000,INC2,households.INC == 2
income_3,PUMA,households,1000,INC3,households.INC == 3
income_4,PUMA,households,1000,INC4,households.INC == 4
income_5,PUMA,households,1000,INC5,households.INC == 5
age_0_17,PUMA,persons,1000,AGE0,persons.AGE <= 4
age_18_64,PUMA,persons,1000,AGE1,(persons.AGE >= 5) & (persons.AGE <= 9)
age_65_plus,PUMA,persons,1000,AGE2,persons.AGE >= 10
female,PUMA,persons,1000,FEMALE,persons.SEX == 2
full_time,COUNTY,persons,1000,FULLTIME,persons.EMP == 1
students,COUNTY,persons,1000,STUDENTS,persons.STU >= 2
"""

PSRC_SETTINGS = """\
geographies: [COUNTY, PUMA, TRACT]
seed_geography: PUMA
household_weight_col: WGTP
household_id_col: hh_id
total_hh_control: num_hh
max_expansion_factor: 30
min_expansion_factor: 0
GROUP_BY_INCIDENCE_SIGNATURE: True
INTEGERIZE_WITH_BACKSTOPPED_CONTROLS: True
SUB_BALANCE_WITH_FLOAT_SEED_WEIGHTS: False
INTEGERIZER_TIMEOUT: 300
USE_SIMUL_INTEGERIZER: True
input_table_list:
  - tablename: households
    filename: seed_households.csv
    index_col: hh_id
  - tablename: persons
    filename: seed_persons.csv
  - tablename: geo_cross_walk
    filename: geo_cross_walk.csv
  - tablename: TRACT_control_data
    filename: tract_controls.csv
  - tablename: PUMA_control_data
    filename: puma_controls.csv
  - tablename: COUNTY_control_data
    filename: county_controls.csv
run_list:
  steps:
    - input_pre_processor
    - setup_data_structures
    - initial_seed_balancing
    - meta_control_factoring
    - final_seed_balancing
    - integerize_final_seed_weights
    - sub_balancing.geography=TRACT
    - expand_households
    - summarize
    - write_tables
    - write_synthetic_population
output_tables:
  action: include
  tables: [summary_TRACT]
output_synthetic_population:
  household_id: household_id
  households:
    filename: synthetic_households.csv
    columns: [NP, VEH, TEN, WRK, INC, WGTP]
  persons:
    filename: synthetic_persons.csv
    columns: [per_num, AGE, SEX, EMP, STU, REL]
"""


def _psrc_raw():
    households = pd.read_csv(PSRC_DIR / 'households.csv', encoding='latin-1', low_memory=False)
    persons = pd.read_csv(PSRC_DIR / 'persons.csv', encoding='latin-1', low_memory=False)
    tract = households['h_tract'].astype('int64').astype(str)
    hh = pd.DataFrame({
        'hh_id': households['hhid'].astype('int64'),
        'NP': households['hhsize'].astype('int64'),
        'VEH': households['vehicle_count'].astype('int64'),
        'TEN': households['rent_own'].astype('int64'),
        'WRK': households['numworkers'].astype('int64'),
        'INC': households['hh_income_broad'].astype('int64'),
        'weight': households['expwt_2'].astype(float),
        'PUMA': households['h_puma12'].astype('int64'),
        'TRACT': tract.astype('int64'),
        'BG': households['h_bg'].astype('int64'),
        # The county (FIPS 33 King, 35 Kitsap, 53 Pierce, 61 Snohomish) from the tract's code:
        # two households carry another county's name. PopulationSim needs integer zone ids.
        'COUNTY': tract.str[2:5].astype('int64'),
    })
    persons = persons[persons['hhid'].isin(hh['hh_id'])]
    per = pd.DataFrame({
        'hh_id': persons['hhid'].astype('int64'),
        'per_num': persons.groupby('hhid').cumcount().to_numpy() + 1,
        'AGE': persons['age'].astype('int64'),
        'SEX': persons['gender'].astype('int64'),
        'EMP': persons['employment'].fillna(0).astype('int64'),
        'STU': persons['student'].fillna(0).astype('int64'),
        'REL': persons['relationship'].astype('int64'),
    })
    # Households whose person rows disagree with their size are left out of every table.
    sizes = per.groupby('hh_id').size()
    consistent = hh['NP'].to_numpy() == sizes.reindex(hh['hh_id']).fillna(0).to_numpy()
    hh = hh[consistent].reset_index(drop=True)
    per = per[per['hh_id'].isin(hh['hh_id'])].reset_index(drop=True)
    return hh, per


def _largest_remainder(shares, total):
    shares = np.nan_to_num(np.asarray(shares, float), nan=0.0, posinf=0.0)
    if shares.sum() <= 0:
        shares = np.ones(len(shares))
    exact = shares / shares.sum() * total
    base = np.floor(exact).astype(np.int64)
    base[np.argsort(-(exact - base), kind='stable')[:int(total - base.sum())]] += 1
    return base


def _block_group_config() -> tuple[str, str]:
    """Controls and settings with block groups (2,017 zones) below the tracts."""
    controls = PSRC_CONTROLS
    for target in ('num_hh', 'hh_size_1', 'hh_size_2', 'hh_size_3', 'hh_size_4_plus'):
        controls = controls.replace(f'{target},TRACT,', f'{target},BG,')
    settings = PSRC_SETTINGS.replace('geographies: [COUNTY, PUMA, TRACT]',
                                     'geographies: [COUNTY, PUMA, TRACT, BG]')
    settings = settings.replace('  - tablename: TRACT_control_data',
                                '  - tablename: BG_control_data\n'
                                '    filename: bg_controls.csv\n'
                                '  - tablename: TRACT_control_data')
    settings = settings.replace('    - sub_balancing.geography=TRACT',
                                '    - sub_balancing.geography=TRACT\n'
                                '    - sub_balancing.geography=BG')
    return controls, settings


def write_psrc_folder(root: Path, num_households: int, seed_share: float = 0.3, seed: int = 0,
                      block_groups: bool = False):
    """Write the PSRC PopulationSim configuration; return (configs, data, reference tables).

    With ``block_groups`` the lowest level is the block group (households and sizes there);
    tracts keep vehicles and tenure.
    """
    hh, per = _psrc_raw()
    if not block_groups:
        hh = hh.drop(columns=['BG'])
    copies = _largest_remainder(hh['weight'], num_households)
    ref_hh = hh.loc[np.repeat(np.arange(len(hh)), copies)].reset_index(drop=True)
    ref_hh['household_id'] = np.arange(1, len(ref_hh) + 1)
    ref_hh['WGTP'] = 1.0
    members = per.groupby('hh_id').indices
    positions = np.concatenate([members[i] for i in ref_hh['hh_id']])
    ref_per = per.iloc[positions].reset_index(drop=True)
    ref_per['household_id'] = np.repeat(ref_hh['household_id'].to_numpy(),
                                        ref_hh['NP'].to_numpy())
    levels = ['COUNTY', 'PUMA', 'TRACT'] + (['BG'] if block_groups else [])
    for level in levels:
        ref_per[level] = np.repeat(ref_hh[level].to_numpy(), ref_hh['NP'].to_numpy())

    rng = np.random.default_rng(seed)
    picked = hh.groupby('PUMA', group_keys=False)[['hh_id']].apply(
        lambda g: g.sample(frac=seed_share, random_state=rng))['hh_id']
    seeds = hh[hh['hh_id'].isin(picked)].copy()
    seeds['WGTP'] = seeds['weight'] / seed_share * num_households / hh['weight'].sum()
    seeds = seeds.drop(columns=[c for c in ('weight', 'TRACT', 'COUNTY', 'BG')
                                if c in seeds.columns])
    seed_persons = per[per['hh_id'].isin(seeds['hh_id'])].copy()
    seed_persons['PUMA'] = seed_persons['hh_id'].map(seeds.set_index('hh_id')['PUMA'])

    configs, data = root / 'configs', root / 'data'
    configs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    controls_text, settings_text = (_block_group_config() if block_groups
                                    else (PSRC_CONTROLS, PSRC_SETTINGS))
    (configs / 'settings.yaml').write_text(settings_text)
    (configs / 'controls.csv').write_text(controls_text)
    seeds.to_csv(data / 'seed_households.csv', index=False)
    seed_persons.to_csv(data / 'seed_persons.csv', index=False)
    crosswalk = ref_hh[levels[::-1]].drop_duplicates(levels[-1])
    crosswalk.to_csv(data / 'geo_cross_walk.csv', index=False)
    controls = pd.read_csv(configs / 'controls.csv')
    frames = {'households': ref_hh, 'persons': ref_per}
    tables = {}
    for row in controls.itertuples():
        frame = frames[row.seed_table]
        mask = np.asarray(_evaluate(_parse(row.expression, row.target), frames, row.target),
                          dtype=bool)
        counts = frame[mask].groupby(row.geography).size()
        table = tables.setdefault(row.geography, pd.DataFrame(
            {row.geography: sorted(frame[row.geography].unique())}))
        table[row.control_field] = counts.reindex(table[row.geography]).fillna(0).astype(
            'int64').to_numpy()
    names = {'BG': 'bg_controls.csv', 'TRACT': 'tract_controls.csv',
             'PUMA': 'puma_controls.csv', 'COUNTY': 'county_controls.csv'}
    for level, table in tables.items():
        table.to_csv(data / names[level], index=False)
    return configs, data, ref_hh, ref_per


# ------------------------------------------------------------------ scoring
def _zone_keys(values) -> np.ndarray:
    return np.asarray([canonical_zone(value) for value in values], dtype=object)


def score_controls(configs: Path, data: Path, households: pd.DataFrame,
                   persons: pd.DataFrame) -> pd.DataFrame:
    """Per control and level: RMSE, %RMSE, mean |diff| of a synthetic population's counts."""
    settings = _read_yaml(configs / 'settings.yaml')
    tables = _read_tables(settings, data, configs)
    levels = [str(level) for level in settings['geographies']]
    controls = pd.read_csv(configs / settings.get('control_file_name', 'controls.csv'),
                           comment='#')
    crosswalk = tables['geo_cross_walk']
    lowest = levels[-1]
    controlled = set(_zone_keys(tables[f'{lowest}_control_data'][lowest]))
    crosswalk = crosswalk[np.isin(_zone_keys(crosswalk[lowest]), list(controlled))]
    frames = {'households': households, 'persons': persons}
    rows = []
    for control in controls.itertuples():
        frame = frames[control.seed_table]
        mask = np.asarray(_evaluate(_parse(control.expression, control.target), frames,
                                    control.target), dtype=bool)
        geography = control.geography
        zones = _zone_keys(frame[geography])
        result = pd.Series(mask.astype(float)).groupby(zones).sum()
        table = tables[f'{geography}_control_data']
        target = pd.Series(table[control.control_field].to_numpy(float),
                           index=_zone_keys(table[geography]))
        target = target[target.index.isin(set(_zone_keys(crosswalk[geography])))]
        own = pd.DataFrame({'target': target, 'result': result.reindex(target.index).fillna(0)})
        for level in levels[:levels.index(geography) + 1]:
            if level == geography:
                grouped = own
            else:
                upper = pd.Series(_zone_keys(crosswalk[level]),
                                  index=_zone_keys(crosswalk[geography]))
                upper = upper[~upper.index.duplicated()]
                grouped = own.groupby(upper.reindex(own.index).to_numpy()).sum()
            difference = grouped['result'] - grouped['target']
            rmse = float(np.sqrt(np.mean(difference ** 2)))
            mean = float(grouped['target'].mean())
            rows.append({'control': control.target, 'geography': geography, 'level': level,
                         'zones': len(grouped), 'rmse': rmse,
                         'pct_rmse': 100 * rmse / mean if mean > 0 else float('nan'),
                         'mean_abs_diff': float(difference.abs().mean())})
    return pd.DataFrame(rows)


def consistency(households: pd.DataFrame, persons: pd.DataFrame) -> float:
    """Share of households whose persons rows number NP."""
    sizes = persons.groupby('household_id').size()
    return float((households['NP'].to_numpy()
                  == sizes.reindex(households['household_id']).fillna(0).to_numpy()).mean())


def _tvd_by_zone(reference: pd.DataFrame, synthetic: pd.DataFrame, zone: str,
                 columns: list[str]) -> float:
    """Mean over zones of the TVD between two joint distributions of ``columns``."""
    ref = reference.groupby([zone] + columns).size()
    syn = synthetic.groupby([zone] + columns).size()
    joined = pd.concat([ref.rename('ref'), syn.rename('syn')], axis=1).fillna(0)
    shares = joined / joined.groupby(level=0).transform('sum')
    return float((shares['ref'] - shares['syn']).abs().groupby(level=0).sum().mean() / 2)


def held_out(ref_hh, ref_per, households, persons) -> dict[str, float]:
    """Statistics that are not controls, synthetic vs the reference population (PSRC)."""
    out = {}
    for frame in (ref_hh, households):
        frame['NP_4'] = frame['NP'].clip(upper=4)
        frame['WRK_3'] = frame['WRK'].clip(upper=3)
    out['size_x_workers_tract_tvd'] = _tvd_by_zone(ref_hh, households, 'TRACT',
                                                   ['NP_4', 'WRK_3'])
    out['age_x_sex_county_tvd'] = _tvd_by_zone(ref_per, persons, 'COUNTY', ['AGE', 'SEX'])

    def composition(hh, per):
        per = per.assign(child=per['AGE'] <= 4, senior=per['AGE'] >= 10,
                         partner=per['REL'] == 1)
        counts = per.groupby('household_id')[['child', 'senior', 'partner']].sum()
        counts = counts.reindex(hh['household_id']).fillna(0)
        adults = hh['NP'].to_numpy() - counts['child'].to_numpy()
        return pd.DataFrame({
            'children': np.minimum(counts['child'].to_numpy(), 3),
            'seniors': np.minimum(counts['senior'].to_numpy(), 2),
            'partner': counts['partner'].to_numpy() > 0,
            'no_adult': (adults == 0) & (counts['child'].to_numpy() > 0),
            'COUNTY': hh['COUNTY'].to_numpy(),
        })

    ref_c, syn_c = composition(ref_hh, ref_per), composition(households, persons)
    out['children_x_seniors_x_partner_county_tvd'] = _tvd_by_zone(
        ref_c, syn_c, 'COUNTY', ['children', 'seniors', 'partner'])
    out['children_without_adults'] = int(syn_c['no_adult'].sum())
    out['reference_children_without_adults'] = int(ref_c['no_adult'].sum())
    return out


# ------------------------------------------------------------------ methods
def run_ours(configs: Path, data: Path, output: Path, seed: int = 0,
             borrow_price: float = 1.0, error_scale: str = 'rmse',
             lower_bounds: bool = False) -> dict:
    """Our CLI in a child process (wall time and peak memory of the whole command).

    With ``lower_bounds`` the per-zone bounds are computed too, and their time is taken out
    of ``seconds`` (PopulationSim has nothing like them).
    """
    output.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, '-m', 'sdv_llmsynthor.cli', 'populationsim', '-c', str(configs),
               '-d', str(data), '-o', str(output), '--seed', str(seed), '-q',
               '--borrow-price', str(borrow_price), '--error-scale', error_scale]
    if lower_bounds:
        command.append('--lower-bounds')
    code, seconds, rss, _ = run_measured(command, output / 'console.log')
    console = (output / 'console.log').read_text()
    if code != 0:
        raise RuntimeError(console[-3000:])
    import re

    borrowed = re.search(r'\(([\d,]+) households copied from another seed zone\)', console)
    out = {'seconds': seconds, 'peak_rss_mb': rss,
           'borrowed_households': int(borrowed.group(1).replace(',', '')) if borrowed else None}
    if lower_bounds:
        bounds = pd.read_csv(output / 'zone_bounds.csv')
        spent = re.search(r'bounds in ([\d.]+) s', console)
        out.update(seconds=seconds - float(spent.group(1)) if spent else seconds,
                   bounds_seconds=float(spent.group(1)) if spent else None,
                   zones=len(bounds),
                   infeasible_zones=int((bounds['lower_bound'] > 1e-9).sum()),
                   own_objective=float(bounds['objective'].sum()),
                   own_lower_bound=float(bounds['lower_bound'].sum()))
    return out


def run_ipf(configs: Path, data: Path, output: Path) -> dict:
    """Per-zone IPF: rake the seed zone's weights to the zone's controls, then integerise.

    Every lowest zone starts from its seed zone's households and weights and is raked (list
    based IPF, 50 sweeps) to its own controls and to every upper control scaled by the zone's
    share of the upper zone's households; the weights are integerised to the household total
    by largest remainder. Upper controls are not reconciled across zones: the classic
    per-zone method the hierarchy-aware tools improve on.
    """
    from sdv_llmsynthor.spec.populationsim import load_populationsim

    started = time.perf_counter()
    project = load_populationsim(configs, data)
    settings = project.settings
    levels = project.spec.geography.levels
    tree = project.spec.geography.tree()
    totals = project.spec.geography.household_totals
    tables = _read_tables(settings, data, configs)
    controls = pd.read_csv(configs / 'controls.csv', comment='#')
    controls = controls[controls['target'] != settings['total_hh_control']]
    hh, per = project.households, project.persons
    frames = {'households': hh, 'persons': per}
    key = project.household_id
    owner = pd.Index(hh[key]).get_indexer(per[key])
    incidence, targets = [], []
    for control in controls.itertuples():
        mask = np.asarray(_evaluate(_parse(control.expression, control.target), frames,
                                    control.target), dtype=float)
        if control.seed_table == 'persons':
            mask = np.bincount(owner, weights=mask, minlength=len(hh))
        incidence.append(mask)
        table = tables[f'{control.geography}_control_data']
        targets.append((control.geography, dict(zip(_zone_keys(table[control.geography]),
                                                    table[control.control_field]))))
    incidence = np.stack(incidence, axis=1)
    seed_level = project.spec.geography.seed_level
    seed_zones = _zone_keys(hh[seed_level])
    households_at = {level: {} for level in levels}
    for position, zone in enumerate(tree.lowest_zones):
        for level in levels:
            upper = tree.zones[level][tree.ancestors[level][position]]
            households_at[level][upper] = households_at[level].get(upper, 0) + totals[zone]
    chosen, zone_columns = [], {level: [] for level in levels}
    for position, zone in enumerate(tree.lowest_zones):
        seed_zone = tree.zones[seed_level][tree.ancestors[seed_level][position]]
        members = np.flatnonzero(seed_zones == seed_zone)
        weights = hh[settings['household_weight_col']].to_numpy(float)[members]
        weights = weights / weights.sum() * totals[zone]
        goal = []
        for level, values in targets:
            upper = tree.zones[level][tree.ancestors[level][position]]
            share = totals[zone] / max(households_at[level][upper], 1)
            goal.append(float(values.get(upper, 0.0)) * share)
        goal = np.asarray(goal)
        local = incidence[members]
        for _ in range(50):
            for column in range(local.shape[1]):
                current = float(local[:, column] @ weights)
                if current > 0:
                    factor = goal[column] / current
                    weights = np.where(local[:, column] > 0, weights * factor, weights)
            weights = weights / max(weights.sum(), 1e-12) * totals[zone]
        counts = _largest_remainder(weights, totals[zone]) if totals[zone] else np.zeros(
            len(members), dtype=np.int64)
        picked = np.repeat(members, counts)
        chosen.append(picked)
        for level in levels:
            zone_columns[level].append(np.full(picked.size, tree.zones[level][
                tree.ancestors[level][position]], dtype=object))
    chosen = np.concatenate(chosen)
    households = hh.iloc[chosen].reset_index(drop=True)
    households.insert(0, 'household_id', np.arange(1, len(households) + 1))
    for level in levels:
        households[level] = np.concatenate(zone_columns[level])
    members = per.groupby(key).indices
    positions = [members.get(seed_id, np.zeros(0, dtype=np.int64))
                 for seed_id in households[key]]
    sizes = np.asarray([p.size for p in positions])
    persons = per.iloc[np.concatenate(positions)].reset_index(drop=True)
    persons['household_id'] = np.repeat(households['household_id'].to_numpy(), sizes)
    for level in levels:
        persons[level] = np.repeat(households[level].to_numpy(), sizes)
    output.mkdir(parents=True, exist_ok=True)
    households.to_csv(output / 'synthetic_households.csv', index=False)
    persons.to_csv(output / 'synthetic_persons.csv', index=False)
    return {'seconds': round(time.perf_counter() - started, 3), 'peak_rss_mb': float('nan')}


def _read_outputs(folder: Path, configs: Path, data: Path, levels: list[str]):
    """The synthetic tables, with every level's zone (PopulationSim omits some) on both."""
    settings = _read_yaml(configs / 'settings.yaml')
    crosswalk = _read_tables(settings, data, configs)['geo_cross_walk']
    lowest = levels[-1]
    crosswalk = crosswalk.assign(_zone=_zone_keys(crosswalk[lowest])).drop_duplicates('_zone')
    households = pd.read_csv(folder / 'synthetic_households.csv')
    zone = _zone_keys(households[lowest])
    for level in levels[:-1]:
        households[level] = crosswalk.set_index('_zone')[level].reindex(zone).to_numpy()
    persons = pd.read_csv(folder / 'synthetic_persons.csv')
    persons = persons.drop(columns=[level for level in levels if level in persons.columns])
    persons = persons.merge(households[['household_id'] + levels], on='household_id',
                            how='left')
    return households, persons


def evaluate_case(name: str, configs: Path, data: Path, workdir: Path, populationsim: bool,
                  reference=None, borrow_price: float = 1.0,
                  error_scale: str = 'rmse', lower_bounds: bool = False) -> dict:
    """Run every method on one configuration and score it."""
    levels = [str(level) for level in _read_yaml(configs / 'settings.yaml')['geographies']]
    methods = {'ours': lambda out: run_ours(configs, data, out, borrow_price=borrow_price,
                                            error_scale=error_scale,
                                            lower_bounds=lower_bounds),
               'ipf_per_zone': lambda out: run_ipf(configs, data, out)}
    if populationsim:
        def psim(out):
            result = run_populationsim(configs, data, out, integerize=True)
            return {'seconds': result['seconds'], 'peak_rss_mb': result['peak_rss_mb']}
        methods['populationsim_0.10.0'] = psim
    case = {'name': name, 'methods': {}}
    for method, run in methods.items():
        out = workdir / name / method
        try:
            timing = run(out)
        except Exception as error:  # noqa: BLE001 - a method that fails is a row, not a crash
            case['methods'][method] = {'error': f'{type(error).__name__}: {str(error)[-500:]}'}
            print(f'{name} {method}: FAILED {error!s:.300}', flush=True)
            continue
        households, persons = _read_outputs(out, configs, data, levels)
        scores = score_controls(configs, data, households, persons)
        entry = {**timing, 'households': len(households), 'persons': len(persons),
                 'consistency': consistency(households, persons),
                 'controls': scores.to_dict('records')}
        if reference is not None:
            entry['held_out'] = held_out(reference[0], reference[1], households, persons)
        case['methods'][method] = entry
        own = scores[scores['level'] == scores['geography']]
        print(f"{name} {method}: {timing['seconds']:.1f} s, {len(households):,} households, "
              f"median %RMSE {own['pct_rmse'].median():.1f}", flush=True)
    return case


def _markdown(cases: list[dict], command: str) -> str:
    lines = ['# Populations for real places: ours, PopulationSim 0.10.0, per-zone IPF', '',
             f'Command: `{command}`', '']
    for case in cases:
        methods = case['methods']
        lines += [f"## {case['name']}", '', '| method | households | persons | seconds | '
                  'peak MiB | NP = persons rows | median %RMSE (own level) | '
                  'max %RMSE | borrowed |', '|---|---|---|---|---|---|---|---|---|']
        for method, entry in methods.items():
            if 'error' in entry:
                lines.append(f"| {method} | failed: {entry['error'][:120]} | | | | | | | |")
                continue
            own = [c for c in entry['controls'] if c['level'] == c['geography']]
            pct = [c['pct_rmse'] for c in own if not math.isnan(c['pct_rmse'])]
            lines.append(f"| {method} | {entry['households']:,} | {entry['persons']:,} | "
                         f"{entry['seconds']:.1f} | {entry['peak_rss_mb']:.0f} | "
                         f"{entry['consistency']:.3f} | {np.median(pct):.1f} | "
                         f"{max(pct):.1f} | {entry.get('borrowed_households', '')} |")
        ours = methods.get('ours', {})
        if 'infeasible_zones' in ours:
            bound = ours['own_lower_bound'] if ours['own_lower_bound'] > 1e-9 else 0.0
            lines += ['', f"Lower bounds (ours, `--lower-bounds`, {ours['bounds_seconds']:.1f} s "
                      f"more): {ours['infeasible_zones']} of {ours['zones']} lowest zones "
                      'cannot meet their own controls with this library and their household '
                      'totals, whatever the method. Our weighted error on those controls is '
                      f"{ours['own_objective']:.4g}, the bound {bound:.4g}: the difference is "
                      "traded for the upper levels' controls or left by the search."]
        ok = [m for m, e in methods.items() if 'error' not in e]
        lines += ['', '%RMSE per control at its own geography (and summed to the levels above):',
                  '', '| control | geography | level | ' + ' | '.join(ok) + ' |',
                  '|---|---|---|' + '---|' * len(ok)]
        first = methods[ok[0]]['controls'] if ok else []
        for index, row in enumerate(first):
            values = [methods[m]['controls'][index]['pct_rmse'] for m in ok]
            lines.append(f"| {row['control']} | {row['geography']} | {row['level']} | "
                         + ' | '.join(f'{v:.1f}' for v in values) + ' |')
        if ok and 'held_out' in methods[ok[0]]:
            lines += ['', 'Held out (not controls), against the reference population:', '',
                      '| statistic | ' + ' | '.join(ok) + ' |', '|---|' + '---|' * len(ok)]
            for stat in methods[ok[0]]['held_out']:
                values = [methods[m]['held_out'][stat] for m in ok]
                lines.append(f'| {stat} | ' + ' | '.join(
                    f'{v:.4f}' if isinstance(v, float) else f'{v}' for v in values) + ' |')
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> None:
    """Run the comparison and write evaluation/results/populations.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--households', type=int, default=20_000,
                        help='PSRC reference households (default 20,000)')
    parser.add_argument('--skip-populationsim', action='store_true')
    parser.add_argument('--cases', nargs='*', default=['example_test', 'psrc'])
    parser.add_argument('--output', type=Path, default=RESULTS / 'populations')
    parser.add_argument('--borrow-price', type=float, default=1.0,
                        help="our engine's price of a household from another seed zone")
    parser.add_argument('--error-scale', choices=ERROR_SCALES,
                        default='rmse', help="our engine's error_scale")
    parser.add_argument('--lower-bounds', action='store_true',
                        help="also bound each lowest zone's error with our seed library")
    args = parser.parse_args(argv)
    command = 'python -m evaluation.populations ' + ' '.join(argv or sys.argv[1:])
    cases = []
    with tempfile.TemporaryDirectory(prefix='populations_') as tmp:
        workdir = Path(tmp)
        if 'example_test' in args.cases:
            cases.append(evaluate_case('example_test', EXAMPLE / 'configs', EXAMPLE / 'data',
                                       workdir, not args.skip_populationsim,
                                       borrow_price=args.borrow_price,
                                       error_scale=args.error_scale,
                                       lower_bounds=args.lower_bounds))
        if 'psrc' in args.cases:
            configs, data, ref_hh, ref_per = write_psrc_folder(workdir / 'psrc_config',
                                                               args.households)
            cases.append(evaluate_case(f'psrc_{args.households}', configs, data, workdir,
                                       not args.skip_populationsim, (ref_hh, ref_per),
                                       args.borrow_price, args.error_scale,
                                       args.lower_bounds))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix('.json').write_text(json.dumps(cases, indent=1, default=float))
    args.output.with_suffix('.md').write_text(_markdown(cases, command.strip()))
    print(f'wrote {args.output.with_suffix(".md")}')


if __name__ == '__main__':
    main()
