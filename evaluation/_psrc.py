"""PSRC 2014 household travel survey: loading, recoding, policy queries and rejection rules.

Shared by :mod:`evaluation.population` and its unit tests. The schema (why these columns and
these codes) is documented in :mod:`evaluation.population`.

Queries and rules work on two frames with the recoded columns:

- ``households``: ``household_id``, ``hh_size``, ``vehicles``, ``tenure``, ``lifecycle``,
  ``income_band``;
- ``persons``: ``person_id``, ``household_id``, ``age_band``, ``gender``, ``relationship``,
  ``employment``, ``student``, ``education``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PSRC_DIR = REPOSITORY_ROOT.parent / 'shared' / 'data' / 'population' / 'psrc_hts2014'
METADATA_PATH = REPOSITORY_ROOT / 'metadata' / 'psrc_households_persons.json'

# ------------------------------------------------------------------ codes and labels
AGE_BANDS = {1: '0-4', 2: '5-11', 3: '12-15', 4: '16-17', 5: '18-24', 6: '25-34', 7: '35-44',
             8: '45-54', 9: '55-64', 10: '65-74', 11: '75-84', 12: '85+'}
AGE_MIDPOINTS = {'0-4': 2.5, '5-11': 8.5, '12-15': 14.0, '16-17': 17.0, '18-24': 21.5,
                 '25-34': 30.0, '35-44': 40.0, '45-54': 50.0, '55-64': 60.0, '65-74': 70.0,
                 '75-84': 80.0, '85+': 90.0}
CHILD_BANDS = ['0-4', '5-11', '12-15', '16-17']
ELDERLY_BANDS = ['65-74', '75-84', '85+']
WORKING_AGE_BANDS = ['18-24', '25-34', '35-44', '45-54', '55-64']
UNDER_35_ADULT_BANDS = ['18-24', '25-34']
MIDDLE_AGE_BANDS = ['35-44', '45-54', '55-64']
GENDERS = {1: 'Male', 2: 'Female'}
RELATIONSHIPS = {0: 'Householder', 1: 'Spouse/partner', 2: 'Child', 3: 'Parent', 4: 'Sibling',
                 5: 'Other relative', 6: 'Non-relative', 7: 'Non-relative', 8: 'Non-relative'}
UNDER_18 = 'Under 18'
"""PSRC did not ask employment, student status or education of persons under 18."""
EMPLOYMENT = {1: 'Full-time', 2: 'Part-time', 3: 'Self-employed', 4: 'Not employed',
              5: 'Not employed', 6: 'Retired', 7: 'Not employed'}
EMPLOYED = ['Full-time', 'Part-time', 'Self-employed']
STUDENT = {1: 'Not a student', 2: 'Full-time', 3: 'Part-time', 4: 'Part-time'}
EDUCATION = {1: 'Less than high school', 2: 'High school', 3: 'Some college or associate',
             4: 'Some college or associate', 5: 'Some college or associate', 6: 'Bachelor',
             7: 'Graduate'}
TENURE = {1: 'Own', 2: 'Rent', 3: 'Other', 4: 'Other', 5: 'Other'}
LIFECYCLE = {1: 'Children under 5', 2: 'Children 5-17',
             3: 'Single, under 35', 4: 'Single, 35-64', 5: 'Single, 65+',
             6: 'No children 2+, under 35', 7: 'No children 2+, 35-64',
             8: 'No children 2+, 65+'}
CHILD_LIFECYCLES = ['Children under 5', 'Children 5-17']
SINGLE_LIFECYCLES = ['Single, under 35', 'Single, 35-64', 'Single, 65+']
INCOME = {1: 'Under $25k', 2: '$25k-$50k', 3: '$50k-$75k', 4: '$75k-$100k', 5: '$100k+',
          98: 'Not reported'}
INCOME_MIDPOINTS = {'Under $25k': 12_500.0, '$25k-$50k': 37_500.0, '$50k-$75k': 62_500.0,
                    '$75k-$100k': 87_500.0, '$100k+': 150_000.0}
"""Household income by band midpoint; $150,000 for the open top band is an assumption."""
MAX_HH_SIZE = 8
MAX_VEHICLES = 10


def _labels(mapping: dict) -> list[str]:
    return list(dict.fromkeys(mapping.values()))


def metadata_dict() -> dict:
    """SDV (V2) multi-table metadata of the recoded households and persons."""
    return {
        'METADATA_SPEC_VERSION': 'V2',
        'tables': {
            'households': {
                'primary_key': 'household_id',
                'columns': {
                    'household_id': {'sdtype': 'id'},
                    'hh_size': {'sdtype': 'numerical'},
                    'vehicles': {'sdtype': 'numerical'},
                    'tenure': {'sdtype': 'categorical'},
                    'lifecycle': {'sdtype': 'categorical'},
                    'income_band': {'sdtype': 'categorical'},
                },
            },
            'persons': {
                'primary_key': 'person_id',
                'columns': {
                    'person_id': {'sdtype': 'id'},
                    'household_id': {'sdtype': 'id'},
                    'age_band': {'sdtype': 'categorical'},
                    'gender': {'sdtype': 'categorical'},
                    'relationship': {'sdtype': 'categorical'},
                    'employment': {'sdtype': 'categorical'},
                    'student': {'sdtype': 'categorical'},
                    'education': {'sdtype': 'categorical'},
                },
            },
        },
        'relationships': [{
            'parent_table_name': 'households', 'parent_primary_key': 'household_id',
            'child_table_name': 'persons', 'child_foreign_key': 'household_id',
        }],
    }


def load_psrc(directory: Path = DEFAULT_PSRC_DIR) -> dict[str, pd.DataFrame]:
    """Read and recode the PSRC 2014 households and persons (latin-1 CSVs).

    Persons whose household is not in ``households.csv`` are dropped.

    Args:
        directory (Path):
            The folder holding ``households.csv`` and ``persons.csv``.

    Returns:
        dict[str, pandas.DataFrame]:
            ``{'households': ..., 'persons': ...}`` with the recoded columns.
    """
    raw_h = pd.read_csv(Path(directory) / 'households.csv', encoding='latin-1', low_memory=False)
    raw_p = pd.read_csv(Path(directory) / 'persons.csv', encoding='latin-1', low_memory=False)
    households = pd.DataFrame({
        'household_id': raw_h['hhid'].astype('int64'),
        'hh_size': raw_h['hhsize'].astype('int64'),
        'vehicles': raw_h['vehicle_count'].astype('int64'),
        'tenure': raw_h['rent_own'].map(TENURE),
        'lifecycle': raw_h['lifecycle'].map(LIFECYCLE),
        'income_band': raw_h['hh_income_broad'].map(INCOME),
    })
    raw_p = raw_p[raw_p['hhid'].isin(households['household_id'])]
    persons = pd.DataFrame({
        'person_id': raw_p['personid'].astype('int64'),
        'household_id': raw_p['hhid'].astype('int64'),
        'age_band': raw_p['age'].map(AGE_BANDS),
        'gender': raw_p['gender'].map(GENDERS),
        'relationship': raw_p['relationship'].map(RELATIONSHIPS),
        'employment': raw_p['employment'].map(EMPLOYMENT).fillna(UNDER_18),
        'student': raw_p['student'].map(STUDENT).fillna(UNDER_18),
        'education': raw_p['education'].map(EDUCATION).fillna(UNDER_18),
    })
    return {'households': households.reset_index(drop=True),
            'persons': persons.reset_index(drop=True)}


# ------------------------------------------------------------------ household summaries
def household_summary(households: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """Households with counts of their persons by kind (what queries and rules need).

    Adds ``persons__count``, ``n_adults``, ``n_children``, ``n_under5``, ``n_elderly``,
    ``n_working_age``, ``n_employed``, ``n_householders``, ``has_partner``, ``head_under35``,
    ``head_65plus``, ``head_female``, ``couple_both_employed``, ``has_graduate``,
    ``avg_age`` (band midpoints).
    """
    p = persons
    flags = pd.DataFrame({
        'household_id': p['household_id'],
        'persons__count': 1,
        'n_adults': ~p['age_band'].isin(CHILD_BANDS),
        'n_children': p['age_band'].isin(CHILD_BANDS),
        'n_under5': p['age_band'] == '0-4',
        'n_elderly': p['age_band'].isin(ELDERLY_BANDS),
        'n_working_age': p['age_band'].isin(WORKING_AGE_BANDS),
        'n_employed': p['employment'].isin(EMPLOYED),
        'n_householders': p['relationship'] == 'Householder',
        'has_partner': p['relationship'] == 'Spouse/partner',
        'head_under35': (p['relationship'] == 'Householder')
        & p['age_band'].isin(UNDER_35_ADULT_BANDS),
        'head_65plus': (p['relationship'] == 'Householder') & p['age_band'].isin(ELDERLY_BANDS),
        'head_female': (p['relationship'] == 'Householder') & (p['gender'] == 'Female'),
        'head_employed': (p['relationship'] == 'Householder') & p['employment'].isin(EMPLOYED),
        'partner_employed': (p['relationship'] == 'Spouse/partner')
        & p['employment'].isin(EMPLOYED),
        'has_graduate': p['education'] == 'Graduate',
        'age_sum': p['age_band'].map(AGE_MIDPOINTS),
    })
    sums = flags.groupby('household_id').sum()
    out = households.join(sums, on='household_id')
    count_columns = [c for c in sums.columns if c != 'age_sum']
    out[count_columns] = out[count_columns].fillna(0).astype('int64')
    for column in ('has_partner', 'head_under35', 'head_65plus', 'head_female', 'has_graduate',
                   'head_employed', 'partner_employed'):
        out[column] = out[column] > 0
    out['couple_both_employed'] = out['head_employed'] & out['partner_employed']
    out['avg_age'] = out['age_sum'] / out['persons__count'].where(out['persons__count'] > 0)
    return out.drop(columns=['age_sum', 'head_employed', 'partner_employed'])


# ------------------------------------------------------------------ policy queries
def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else float('nan')


def _income(summary: pd.DataFrame) -> pd.Series:
    return summary['income_band'].map(INCOME_MIDPOINTS)


def _per_person_income(summary: pd.DataFrame) -> pd.Series:
    return _income(summary) / summary['persons__count'].where(summary['persons__count'] > 0)


def q_prop_elderly_poverty(s):
    """Elderly (65+) member and per-person income (band midpoint / size) below $12,500."""
    return _share((s['n_elderly'] > 0) & (_per_person_income(s) < 12_500))


def q_prop_female_headed_poverty(s):
    """Female householder without a spouse/partner and per-person income below $15,000."""
    return _share(s['head_female'] & ~s['has_partner'] & (_per_person_income(s) < 15_000))


def q_prop_high_dependency_ratio(s):
    """Children (<18) plus elderly (65+) outnumber the working-age (18-64) members."""
    return _share((s['n_children'] + s['n_elderly']) > s['n_working_age'])


def q_prop_high_edu_unemployed(s):
    """A member has a graduate degree and nobody is employed."""
    return _share(s['has_graduate'] & (s['n_employed'] == 0))


def q_prop_dual_earner_couples(s):
    """Householder and spouse/partner both employed (share of all households)."""
    return _share(s['couple_both_employed'])


def q_avg_income_per_person_dual_earner(s):
    """Mean per-person income (band midpoint / size) of dual-earner couple households."""
    values = _per_person_income(s)[s['couple_both_employed']].dropna()
    return float(values.mean()) if len(values) else float('nan')


def q_age_gap_owners_vs_renters(s):
    """Mean of the household average age (band midpoints), owners minus renters."""
    owners = s.loc[s['tenure'] == 'Own', 'avg_age'].dropna()
    renters = s.loc[s['tenure'] == 'Rent', 'avg_age'].dropna()
    if owners.empty or renters.empty:
        return float('nan')
    return float(owners.mean() - renters.mean())


def q_prop_multigenerational(s):
    """Both a child under 18 and an elderly member (65+)."""
    return _share((s['n_children'] > 0) & (s['n_elderly'] > 0))


def q_median_avg_age(s):
    """Median over households of the average member age (band midpoints)."""
    values = s['avg_age'].dropna()
    return float(values.median()) if len(values) else float('nan')


def q_prop_families_with_children(s):
    """At least one member under 18."""
    return _share(s['n_children'] > 0)


def q_prop_no_vehicle_low_income(s):
    """No vehicle and per-person income below $15,000."""
    return _share((s['vehicles'] == 0) & (_per_person_income(s) < 15_000))


def q_prop_child_no_vehicle(s):
    """A child under 18 and no vehicle."""
    return _share((s['n_children'] > 0) & (s['vehicles'] == 0))


def q_prop_elderly_no_vehicle(s):
    """An elderly member (65+) and no vehicle."""
    return _share((s['n_elderly'] > 0) & (s['vehicles'] == 0))


def q_prop_high_vehicle_high_income(s):
    """Three or more vehicles and household income $100,000 or more."""
    return _share((s['vehicles'] >= 3) & (s['income_band'] == '$100k+'))


#: ``name -> (paper query, function of the household summary)``. The paper's
#: ``median_income_black_households`` and ``prop_multigenerational_racial`` need race, which
#: this schema does not hold; they are listed in :data:`UNSUPPORTED_QUERIES`.
QUERIES = {
    'prop_elderly_poverty': ('Vulnerability (1) prop_elderly_poverty', q_prop_elderly_poverty),
    'prop_female_headed_poverty': ('Vulnerability (2) prop_female_headed_poverty',
                                   q_prop_female_headed_poverty),
    'prop_high_dependency_ratio': ('Vulnerability (3) prop_high_dependency_ratio',
                                   q_prop_high_dependency_ratio),
    'prop_high_edu_unemployed': ('Employment (1) prop_high_edu_unemployed',
                                 q_prop_high_edu_unemployed),
    'prop_dual_earner_couples': ('Employment (2) prop_dual_earner_couples',
                                 q_prop_dual_earner_couples),
    'avg_income_per_person_dual_earner': ('Employment (3) avg_income_per_person_dual_earner',
                                          q_avg_income_per_person_dual_earner),
    'age_gap_owners_vs_renters': ('Household (1) age_gap_owners_vs_renters',
                                  q_age_gap_owners_vs_renters),
    'prop_multigenerational': ('Household (2) prop_multigenerational', q_prop_multigenerational),
    'median_avg_age': ('Demographics (1) median_avg_age', q_median_avg_age),
    'prop_families_with_children': ('Demographics (2) prop_families_with_children',
                                    q_prop_families_with_children),
    'prop_no_vehicle_low_income': ('Mobility (1) prop_no_vehicle_low_income',
                                   q_prop_no_vehicle_low_income),
    'prop_child_no_vehicle': ('Mobility (2) prop_child_no_vehicle', q_prop_child_no_vehicle),
    'prop_elderly_no_vehicle': ('Mobility (3) prop_elderly_no_vehicle',
                                q_prop_elderly_no_vehicle),
    'prop_high_vehicle_high_income': ('Table 5 prop_high_vehicle_high_income',
                                      q_prop_high_vehicle_high_income),
}
UNSUPPORTED_QUERIES = {
    'median_income_black_households': 'Equity (1): needs race (not in this schema)',
    'prop_multigenerational_racial': 'Equity (2): needs race (not in this schema)',
}


def evaluate_queries(households: pd.DataFrame, persons: pd.DataFrame) -> dict[str, float]:
    """Value of every query in :data:`QUERIES` on a population."""
    summary = household_summary(households, persons)
    return {name: function(summary) for name, (_, function) in QUERIES.items()}


def relative_error(real: float, synthetic: float) -> float:
    """``|synthetic - real| / |real|`` (NaN when ``real`` is 0 or either value is NaN)."""
    if not np.isfinite(real) or not np.isfinite(synthetic) or real == 0:
        return float('nan')
    return abs(synthetic - real) / abs(real)


# ------------------------------------------------------------------ rejection rules
def _in(values: list[str]) -> str:
    return '[' + ', '.join(f"'{v}'" for v in values) + ']'


_CHILD = f'age_band in {_in(CHILD_BANDS)}'
#: Person rules ``(name, expression, paper counterpart)`` in the spec's expression language.
PERSON_RULES = [
    ('age_education_minor', f"{_CHILD} -> education == '{UNDER_18}'",
     'age-education consistency (3a/3b)'),
    ('age_education_adult', f"not ({_CHILD}) -> education != '{UNDER_18}'",
     'age-education consistency (3a/3b)'),
    ('age_employment_minor', f"{_CHILD} -> employment == '{UNDER_18}'",
     'age-employment consistency (appendix C.2)'),
    ('age_employment_adult', f"not ({_CHILD}) -> employment != '{UNDER_18}'",
     'age-employment consistency (appendix C.2)'),
    ('age_student', f"({_CHILD}) == (student == '{UNDER_18}')", 'age-education consistency'),
    ('householder_adult', f"relationship == 'Householder' -> not ({_CHILD})",
     'relationship consistency'),
    ('partner_adult', f"relationship == 'Spouse/partner' -> not ({_CHILD})",
     'relationship consistency'),
    ('parent_adult', f"relationship == 'Parent' -> not ({_CHILD})", 'relationship consistency'),
    ('retired_not_young', "employment == 'Retired' -> age_band != '18-24'",
     'age-employment consistency'),
]
#: Household rules, over the household summary (see :func:`household_summary`).
HOUSEHOLD_RULES = [
    ('size_range', f'hh_size >= 1 and hh_size <= {MAX_HH_SIZE}', 'person count range (1)'),
    ('vehicle_range', f'vehicles >= 0 and vehicles <= {MAX_VEHICLES}',
     'vehicle count range (2)'),
    ('size_matches_members', 'hh_size == persons__count', 'person count match (4)'),
    ('one_householder', 'n_householders == 1', 'relationship consistency'),
    ('adult_present', 'n_adults >= 1', 'adult consistency'),
    ('couple_two_adults', 'has_partner -> n_adults >= 2', 'adult consistency for couples (5)'),
    ('lifecycle_children',
     "(lifecycle == 'Children under 5') == (n_under5 >= 1) and "
     "(lifecycle == 'Children 5-17') == (n_under5 == 0 and n_children >= 1)",
     'householder type consistency'),
    ('lifecycle_size', f'(lifecycle in {_in(SINGLE_LIFECYCLES)}) == (n_children == 0 and '
     'hh_size == 1)', 'householder type consistency'),
    ('lifecycle_head_age',
     "(lifecycle in ['Single, under 35', 'No children 2+, under 35'] -> head_under35) and "
     "(lifecycle in ['Single, 65+', 'No children 2+, 65+'] -> head_65plus) and "
     "(lifecycle in ['Single, 35-64', 'No children 2+, 35-64'] -> "
     "not head_under35 and not head_65plus)", 'householder type consistency'),
]


def _holds(expression: str, frame: pd.DataFrame) -> np.ndarray:
    from sdv_llmsynthor.spec.expressions import parse_expression

    return np.asarray(parse_expression(expression).evaluate(frame), dtype=bool)


def rejection_rates(households: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """Per-rule and overall rejection rates, as in the paper's manual rejection sampling.

    A household is rejected when one of its persons fails a person rule or it fails a household
    rule. Rows: one per rule (``level``, ``rule``, ``checked``, ``rejected``, ``rate``), then
    ``person (any rule)``, ``household (own rules)`` and ``household (overall)``.
    """
    rows = []
    person_failed = np.zeros(len(persons), dtype=bool)
    for name, expression, _ in PERSON_RULES:
        failed = ~_holds(expression, persons)
        person_failed |= failed
        rows.append(('person', name, len(persons), int(failed.sum())))
    summary = household_summary(households, persons)
    household_failed = np.zeros(len(summary), dtype=bool)
    for name, expression, _ in HOUSEHOLD_RULES:
        failed = ~_holds(expression, summary)
        household_failed |= failed
        rows.append(('household', name, len(summary), int(failed.sum())))
    bad_households = set(persons.loc[person_failed, 'household_id'])
    overall = household_failed | summary['household_id'].isin(bad_households).to_numpy()
    rows.append(('person', 'person (any rule)', len(persons), int(person_failed.sum())))
    rows.append(('household', 'household (own rules)', len(summary),
                 int(household_failed.sum())))
    rows.append(('household', 'household (overall)', len(summary), int(overall.sum())))
    out = pd.DataFrame(rows, columns=['level', 'rule', 'checked', 'rejected'])
    out['rate'] = out['rejected'] / out['checked'].where(out['checked'] > 0)
    return out
