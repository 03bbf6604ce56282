"""Build the example specs in ``specs/examples/`` (and the SDV metadata they go with).

Run from the repository root::

    python evaluation/make_example_specs.py [--mobility-csv PATH] [--only NAME ...]

- ``ecommerce.json``: derived with :meth:`MacroSpec.from_data` from 2,000 transactions of the
  paper's e-commerce Bayesian network (``sample_ecommerce(2000, seed=0)``), with the joints of
  the network's dependencies: [product_category, user_age, gender], [price, product_category],
  [payment_method, location_tier].
- ``population.json``: households and their persons. The targets are *illustrative*: they are
  derived from a toy population drawn by :func:`simulate_population` below (plausible shapes
  for a US state, not census figures), with derived columns, a cross-table statistic and the
  validity rules of the paper's appendix C.2. The metadata is ``metadata/population.json``.
- ``mobility.json``: trips of the PSRC 2017 household travel survey
  (``../shared/data/mobility/psrc_hts2017_trips_od.csv``, not part of the repository). This
  script also writes ``metadata/mobility.json``. See :func:`load_mobility_trips` for the
  recoding (departure hour, zone groups, mode and purpose labels).

The rows never reach the specs: only aggregates do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sdv_llmsynthor.spec.expressions import parse_expression  # noqa: E402
from sdv_llmsynthor.spec.model import MacroSpec, RuleSpec  # noqa: E402

SPECS_DIR = REPO / 'specs' / 'examples'
METADATA_DIR = REPO / 'metadata'
DEFAULT_MOBILITY_CSV = REPO.parent / 'shared' / 'data' / 'mobility' / 'psrc_hts2017_trips_od.csv'
MAX_SPEC_BYTES = 300_000


def _load_metadata(path: Path):
    from sdv.metadata import Metadata

    return Metadata.load_from_json(str(path))


def _save(spec: MacroSpec, metadata, filename: str) -> Path:
    spec.validate(metadata)
    path = SPECS_DIR / filename
    spec.save(path)
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise RuntimeError(f'{path} is {size} bytes, more than {MAX_SPEC_BYTES}.')
    statistics = sum(len(t.statistics) for t in spec.tables.values())
    print(f'wrote {path.relative_to(REPO)} ({size / 1000:.1f} kB, {statistics} statistics)')
    return path


def _check_rules(spec: MacroSpec, frames: dict[str, pd.DataFrame]) -> None:
    """Every rule of the spec must hold on the rows it was derived from."""
    for table_name, table in spec.tables.items():
        for rule in table.rules:
            holds = np.asarray(parse_expression(rule.expression).evaluate(frames[table_name]))
            if not holds.all():
                raise RuntimeError(
                    f"rule '{rule.name}' of table '{table_name}' fails on "
                    f'{int((~holds).sum())} source rows.'
                )


def _describe(spec: MacroSpec, table_name: str, descriptions: dict[str, str]) -> None:
    table = spec.tables[table_name]
    for column, text in descriptions.items():
        if column in table.columns:
            table.columns[column].description = text
        elif column in table.derived_columns:
            table.derived_columns[column].description = text


# ---------------------------------------------------------------------- e-commerce
ECOMMERCE_CONTEXT = (
    'Transactions of an online shop, one row per purchase, as in the e-commerce task of the '
    'LLMSynthor paper: buyers aged 18 to 90 in developed or developing cities buy '
    'electronics, apparel, food and beverages, or furniture and appliances, paying online or '
    'cash on delivery. The targets were computed from 2,000 transactions drawn from the '
    "paper's Bayesian network (appendix A.1), whose dependencies are: product category on "
    'age and gender, price on category, payment method on location tier.'
)
ECOMMERCE_DESCRIPTIONS = {
    'user_age': 'Age of the buyer in years (18 to 90).',
    'gender': 'Gender of the buyer.',
    'location_tier': "Development tier of the buyer's city.",
    'product_category': 'Category of the product bought.',
    'price': 'Price paid, in US dollars (0 to 2,000).',
    'payment_method': 'How the buyer paid.',
}


def make_ecommerce() -> None:
    """Derive ``specs/examples/ecommerce.json`` from the paper's Bayesian network."""
    from sdv_llmsynthor.evaluation.ecommerce_bn import build_ecommerce_metadata, sample_ecommerce

    metadata_path = METADATA_DIR / 'ecommerce.json'
    if metadata_path.exists():
        metadata = _load_metadata(metadata_path)
    else:
        metadata = build_ecommerce_metadata()
    data = sample_ecommerce(2000, seed=0)
    table_name = next(iter(metadata.tables))
    spec = MacroSpec.from_data(
        data, metadata, table_name=table_name, name='ecommerce',
        context=ECOMMERCE_CONTEXT,
        joints=[['product_category', 'user_age', 'gender'], ['price', 'product_category'],
                ['payment_method', 'location_tier']],
    )
    spec.tables[table_name].context = 'One row per purchase.'
    _describe(spec, table_name, ECOMMERCE_DESCRIPTIONS)
    spec.tables[table_name].rules = [
        RuleSpec('adult buyer', 'user_age >= 18 and user_age <= 90',
                 'Buyers are between 18 and 90 years old.'),
        RuleSpec('price range', 'price >= 0 and price <= 2000', 'Prices are 0 to 2,000 USD.'),
    ]
    _check_rules(spec, {table_name: data})
    _save(spec, metadata, 'ecommerce.json')


# ---------------------------------------------------------------------- population
RACES = ['White', 'Black', 'Indian', 'Asian', 'Combined']
RACE_SHARES = [0.66, 0.26, 0.01, 0.02, 0.05]
EDUCATION_ADULT = ['Elementary', 'High School', 'Bachelor', 'Master', 'Doctorate']
EDUCATION_ADULT_SHARES = [0.08, 0.50, 0.27, 0.12, 0.03]
HOUSEHOLDER_TYPES = ['Couple', 'Single Male', 'Single Female']
HOUSEHOLDER_SHARES = [0.55, 0.17, 0.28]
SIZE_SHARES = {  # num_persons 2, 3, 4, 5
    'Couple': [0.42, 0.24, 0.21, 0.13],
    'Single': [0.58, 0.27, 0.11, 0.04],
}
VEHICLE_SHARES = {  # num_vehicles 0..6
    'Couple': [0.02, 0.18, 0.46, 0.22, 0.08, 0.03, 0.01],
    'Single': [0.13, 0.50, 0.26, 0.07, 0.02, 0.01, 0.01],
}
OWNED_SHARE = {'Couple': 0.78, 'Single': 0.48}
INCOME_MEDIAN = {'Elementary': 18000, 'High School': 30000, 'Bachelor': 52000,
                 'Master': 68000, 'Doctorate': 90000}
MAX_INCOME = 4209995


def _education(rng, age: int) -> str:
    if age < 5:
        return 'Preschool'
    if age < 14:
        return 'Elementary'
    if age < 18:
        return 'High School' if rng.random() < 0.6 else 'Elementary'
    if age < 22:
        return rng.choice(['High School', 'Bachelor'], p=[0.85, 0.15])
    return rng.choice(EDUCATION_ADULT, p=EDUCATION_ADULT_SHARES)


def _employment(rng, age: int) -> str:
    if age < 16:
        return 'Under 16'
    if age < 18:
        return 'Employed' if rng.random() < 0.25 else 'Unemployed'
    if age >= 65:
        return 'Employed' if rng.random() < 0.18 else 'Unemployed'
    draw = rng.random()
    if draw < 0.012:
        return 'Military'
    return 'Employed' if draw < 0.74 else 'Unemployed'


def _income(rng, age: int, education: str, employment: str) -> int:
    if age < 16:
        return 0
    if employment in ('Employed', 'Military'):
        median = INCOME_MEDIAN.get(education, 15000) * (0.5 if age < 22 else 1.0)
        value = rng.lognormal(np.log(median), 0.6)
    elif age >= 65:
        value = rng.lognormal(np.log(21000), 0.5)  # pensions, social security
    else:
        value = rng.lognormal(np.log(6000), 1.0) if rng.random() < 0.4 else 0.0
    return int(min(round(value, -2), MAX_INCOME))


def simulate_population(num_households: int = 1000, seed: int = 0):
    """Draw a toy population of households and persons that satisfies the paper's rules.

    The shares are plausible for a US state (couples are more than half of the households,
    most have one to three vehicles, adults' incomes grow with education) but invented: the
    resulting targets are illustrative, not census figures.

    Args:
        num_households (int):
            Households to draw.
        seed (int):
            Random seed.

    Returns:
        tuple[pandas.DataFrame, pandas.DataFrame]:
            ``households`` and ``persons``.
    """
    rng = np.random.default_rng(seed)
    households, persons = [], []
    for household_id in range(1, num_households + 1):
        householder_type = rng.choice(HOUSEHOLDER_TYPES, p=HOUSEHOLDER_SHARES)
        group = 'Couple' if householder_type == 'Couple' else 'Single'
        size = int(rng.choice([2, 3, 4, 5], p=SIZE_SHARES[group]))
        race = rng.choice(RACES, p=RACE_SHARES)
        head_age = int(np.clip(rng.normal(50, 15), 20, 95))
        ages = [head_age]
        if group == 'Couple':
            ages.append(int(np.clip(head_age + rng.normal(-2, 4), 18, 99)))
        while len(ages) < size:
            draw = rng.random()
            if draw < 0.75 and head_age < 62:
                low = max(0, head_age - 45)
                high = max(low + 1, min(18, head_age - 17))
                ages.append(int(rng.integers(low, high)))
            elif draw < 0.88:
                ages.append(int(np.clip(head_age - rng.integers(18, 35), 18, 99)))
            else:
                ages.append(int(np.clip(head_age + rng.integers(20, 32), 60, 99)))
        vehicles = int(rng.choice(np.arange(7), p=VEHICLE_SHARES[group]))
        tenure = 'Owned' if rng.random() < OWNED_SHARE[group] else 'Rented'
        households.append({
            'household_id': household_id, 'num_persons': size, 'housing_tenure': tenure,
            'householder_type': householder_type, 'num_vehicles': vehicles,
        })
        for age in ages:
            education = _education(rng, age)
            employment = _employment(rng, age)
            persons.append({
                'person_id': len(persons) + 1, 'household_id': household_id, 'age': age,
                'race': race if rng.random() < 0.93 else rng.choice(RACES, p=RACE_SHARES),
                'education': education, 'employment': employment,
                'income': _income(rng, age, education, employment),
            })
    return pd.DataFrame(households), pd.DataFrame(persons)


POPULATION_CONTEXT = (
    'Households of a US state and the persons living in them, as in the population task of '
    'the LLMSynthor paper (American Community Survey microdata, South Carolina). Each '
    'household has 2 to 5 persons. ILLUSTRATIVE TARGETS: the numbers in this file were '
    'computed from a toy population drawn by evaluation/make_example_specs.py with plausible '
    'but invented shares; they are not census figures. Replace them with published tables '
    'for real use.'
)
POPULATION_RULES = {
    'households': [
        ('person count range', 'num_persons >= 2 and num_persons <= 5',
         'Households have 2 to 5 persons.'),
        ('vehicle count range', 'num_vehicles >= 0 and num_vehicles <= 6', None),
        ('person count match', 'num_persons == persons__count',
         'The number of person rows equals num_persons.'),
        ('couple adults', "householder_type == 'Couple' -> n_adults >= 2",
         'A couple household has at least two persons aged 18 or older.'),
    ],
    'persons': [
        ('age range', 'age >= 0 and age <= 99', None),
        ('under 5 preschool', "age < 5 -> education == 'Preschool'",
         'Children under 5 have Preschool education.'),
        ('under 18 education', "age < 18 -> education in ['Preschool', 'Elementary', "
         "'High School']", 'Persons under 18 have not gone beyond high school.'),
        ('under 16 employment', "age < 16 -> employment == 'Under 16'", None),
        ('16 and over employment', "age >= 16 -> employment != 'Under 16'", None),
        ('income range', 'income >= 0 and income <= 4209995', None),
    ],
}
POPULATION_DESCRIPTIONS = {
    'households': {
        'num_persons': 'Number of persons in the household (2 to 5).',
        'housing_tenure': 'Whether the household owns or rents its home.',
        'householder_type': 'Household composition by adult structure.',
        'num_vehicles': 'Vehicles available to the household (0 to 6).',
        'n_adults': 'Persons aged 18 or older in the household.',
        'has_child': 'Whether someone in the household is under 18.',
        'has_elderly': 'Whether someone in the household is 65 or older.',
    },
    'persons': {
        'age': 'Age in years (0 to 99).',
        'race': 'Race, simplified ACS categories.',
        'education': 'Highest educational attainment.',
        'employment': 'Employment status.',
        'income': 'Annual personal income in US dollars.',
    },
}


def make_population() -> None:
    """Derive ``specs/examples/population.json`` from a toy population (illustrative)."""
    metadata = _load_metadata(METADATA_DIR / 'population.json')
    households, persons = simulate_population(1000, seed=0)
    data = {'households': households, 'persons': persons}
    derived = {'households': {
        'n_adults': {'child_table': 'persons', 'function': 'count', 'predicate': 'age >= 18'},
        'has_child': {'child_table': 'persons', 'function': 'any', 'predicate': 'age < 18'},
        'has_elderly': {'child_table': 'persons', 'function': 'any', 'predicate': 'age >= 65'},
    }}
    spec = MacroSpec.from_data(
        data, metadata, name='population (illustrative targets)', context=POPULATION_CONTEXT,
        num_sub_bins=1, derived=derived,
        bins={'persons': {
            'age': [0, 5, 10, 16, 18, 25, 35, 45, 55, 65, 75, 85, 99],
            'income': [0, 1, 10000, 20000, 35000, 50000, 75000, 100000, 150000, 250000,
                       MAX_INCOME],
        }},
        joints={
            'households': [['householder_type', 'has_child'],
                           ['householder_type', 'persons__count'],
                           ['housing_tenure', 'num_vehicles'],
                           ['has_elderly', 'housing_tenure']],
            'persons': [['age', 'education'], ['age', 'employment'],
                        ['education', 'income'], ['race', 'education']],
        },
    )
    for table_name, rules in POPULATION_RULES.items():
        spec.tables[table_name].rules = [RuleSpec(*rule) for rule in rules]
        _describe(spec, table_name, POPULATION_DESCRIPTIONS[table_name])
    cross = spec.tables['households'].get_statistic('householder_type x has_child')
    cross.description = 'Cross-table: household type by whether any person is under 18.'
    checked = dict(data)
    checked['households'] = households.assign(
        persons__count=households['household_id'].map(persons['household_id'].value_counts()),
        n_adults=households['household_id'].map(
            persons[persons['age'] >= 18]['household_id'].value_counts()).fillna(0),
    )
    _check_rules(spec, checked)
    _save(spec, metadata, 'population.json')


# ---------------------------------------------------------------------- mobility
MODE_LABELS = {
    1: 'Walk', 2: 'Bike', 3: 'Drive alone', 4: 'Shared ride 2', 5: 'Shared ride 3+',
    6: 'Walk to transit', 7: 'Drive to transit', 8: 'School bus', 9: 'Other', 10: 'Other',
}
PURPOSE_LABELS = {
    0: 'Home', 1: 'Work', 2: 'School', 3: 'Escort', 4: 'Personal business', 5: 'Shop',
    6: 'Meal', 7: 'Social', 8: 'Recreation', 9: 'Medical', 10: 'Change mode',
}
#: Zone groups: contiguous ranges of PSRC TAZ numbers, cut so that each group holds about an
#: eighth of the survey's trip ends. ``(first TAZ, last TAZ)``.
ZONE_GROUPS = [(1, 249), (250, 399), (400, 549), (550, 749), (750, 1499), (1500, 1674),
               (1675, 2199), (2200, 3700)]
DEPARTURE_BINS = [0, 6, 9, 12, 14, 17, 20, 24]
MOBILITY_CONTEXT = (
    'Trips made on one weekday by 1,341 persons of 771 households in the Puget Sound region '
    '(Seattle, Washington), from the Puget Sound Regional Council 2017 household travel '
    'survey (DaySim format). One row per trip. Zones are groups of traffic analysis zones '
    '(TAZ): contiguous ranges of TAZ numbers, each holding about one eighth of the trip '
    'ends. Departure time is in hours after midnight; bins follow the paper (night, morning '
    'peak, late morning, midday, afternoon, evening peak, evening).'
)


def zone_group(taz: float) -> str | None:
    """Label of the zone group of a TAZ number (None when missing or out of range)."""
    if pd.isna(taz):
        return None
    for first, last in ZONE_GROUPS:
        if first <= taz <= last:
            return f'TAZ {first}-{last}'
    return None


def load_mobility_trips(path: Path) -> pd.DataFrame:
    """Read the PSRC trips and recode them.

    ``departure_time`` is ``deptm / 60`` (hours after midnight); ``origin_zone`` and
    ``destination_zone`` are zone groups of ``otaz``/``dtaz`` (:data:`ZONE_GROUPS`); ``mode``
    uses the data README's labels (codes 9 and 10 both as Other; 10 is not in the README);
    ``purpose`` is the destination purpose ``dpurp`` with the README's labels, 8 to 10 as in
    DaySim's coding (recreation, medical, change mode), -1 as missing.

    Args:
        path (Path):
            The CSV (latin-1).

    Returns:
        pandas.DataFrame
    """
    raw = pd.read_csv(path, encoding='latin-1')
    trips = pd.DataFrame({
        'trip_id': np.arange(1, len(raw) + 1),
        'departure_time': (raw['deptm'] / 60.0).round(2),
        'origin_zone': raw['otaz'].map(zone_group),
        'destination_zone': raw['dtaz'].map(zone_group),
        'mode': raw['mode'].map(lambda code: MODE_LABELS.get(int(code))),
        'purpose': raw['dpurp'].map(lambda code: PURPOSE_LABELS.get(int(code))),
    })
    return trips


def mobility_metadata() -> dict:
    """SDV metadata (V2) of the recoded trips table."""
    zones = [f'TAZ {first}-{last}' for first, last in ZONE_GROUPS]
    modes = list(dict.fromkeys(MODE_LABELS.values()))
    return {
        'METADATA_SPEC_VERSION': 'V2',
        'tables': {'trips': {
            'primary_key': 'trip_id',
            'columns': {
                'trip_id': {'sdtype': 'id'},
                'departure_time': {'sdtype': 'numerical', 'decimal_places': 2,
                                   'range_min': 0, 'range_max': 24},
                'origin_zone': {'sdtype': 'categorical', 'range_values': zones},
                'destination_zone': {'sdtype': 'categorical', 'range_values': zones},
                'mode': {'sdtype': 'categorical', 'range_values': modes},
                'purpose': {'sdtype': 'categorical',
                            'range_values': list(PURPOSE_LABELS.values())},
            },
        }},
        'relationships': [],
    }


def make_mobility(csv_path: Path, min_cell_count: int = 5) -> None:
    """Derive ``specs/examples/mobility.json`` and ``metadata/mobility.json``.

    The origin x destination x departure table (448 cells) is kept partial: only cells with
    at least ``min_cell_count`` trips are listed, the others are unconstrained.
    """
    if not csv_path.exists():
        print(f'skipped mobility: {csv_path} not found (pass --mobility-csv)')
        return
    metadata_dict = mobility_metadata()
    metadata_path = METADATA_DIR / 'mobility.json'
    metadata_path.write_text(json.dumps(metadata_dict, indent=2) + '\n', encoding='utf-8')
    metadata = _load_metadata(metadata_path)

    trips = load_mobility_trips(csv_path)
    spec = MacroSpec.from_data(
        trips, metadata, table_name='trips', name='mobility', context=MOBILITY_CONTEXT,
        num_sub_bins=1, bins={'departure_time': DEPARTURE_BINS},
        joints=[['departure_time', 'purpose'],
                ['origin_zone', 'destination_zone', 'departure_time']],
    )
    table = spec.tables['trips']
    odt = table.statistics[-1]
    num_rows = table.num_rows
    odt.cells = [cell for cell in odt.cells if cell.value * num_rows >= min_cell_count - 1e-9]
    odt.complete = False
    odt.description = (f'Partial: only origin/destination/departure cells with at least '
                       f'{min_cell_count} trips are listed; the others are not constrained.')
    odt.source = 'PSRC 2017 household travel survey'
    _describe(spec, 'trips', {
        'departure_time': 'Departure time, hours after midnight (0 to 24).',
        'origin_zone': 'Zone group of the trip origin.',
        'destination_zone': 'Zone group of the trip destination.',
        'mode': 'Main travel mode of the trip.',
        'purpose': 'Activity at the destination.',
    })
    table.rules = [RuleSpec('departure in the day', 'departure_time >= 0 and departure_time < 24',
                            'Departures are between midnight and midnight.')]
    _check_rules(spec, {'trips': trips})
    _save(spec, metadata, 'mobility.json')


def main(argv=None) -> None:
    """Build the example specs named on the command line (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mobility-csv', type=Path, default=DEFAULT_MOBILITY_CSV)
    parser.add_argument('--only', nargs='*', choices=['ecommerce', 'population', 'mobility'])
    args = parser.parse_args(argv)
    chosen = args.only or ['ecommerce', 'population', 'mobility']
    SPECS_DIR.mkdir(parents=True, exist_ok=True)
    if 'ecommerce' in chosen:
        make_ecommerce()
    if 'population' in chosen:
        make_population()
    if 'mobility' in chosen:
        make_mobility(args.mobility_csv)


if __name__ == '__main__':
    main()
