"""The example specs validate against their metadata and say what the papers' tasks need."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.spec.expressions import parse_expression
from sdv_llmsynthor.spec.model import MacroSpec, child_count_column
from sdv_llmsynthor.spec.resolve import resolve_columns

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = ['ecommerce', 'population', 'mobility']


def _load(name):
    spec = MacroSpec.load(REPO / 'specs' / 'examples' / f'{name}.json')
    metadata = Metadata.load_from_json(str(REPO / 'metadata' / f'{name}.json'))
    return spec, metadata


@pytest.mark.parametrize('name', EXAMPLES)
def test_example__validates_against_its_metadata(name):
    """Each example spec is valid for its metadata, small, and round-trips."""
    # Setup
    path = REPO / 'specs' / 'examples' / f'{name}.json'
    spec, metadata = _load(name)

    # Run
    spec.validate(metadata)

    # Assert
    assert path.stat().st_size < 300_000
    assert spec.to_dict() == json.loads(path.read_text(encoding='utf-8'))
    assert spec.context
    for table_name in metadata.tables:
        resolve_columns(spec, metadata, table_name)


def test_example__ecommerce_has_the_paper_joints():
    """The e-commerce spec holds the joints of the Bayesian network's dependencies."""
    # Setup
    spec, _ = _load('ecommerce')

    # Run
    table = spec.get_table('transactions')
    joints = {frozenset(s.columns) for s in table.statistics if s.is_joint}

    # Assert
    assert table.num_rows == 2000
    assert joints == {frozenset({'product_category', 'user_age', 'gender'}),
                      frozenset({'price', 'product_category'}),
                      frozenset({'payment_method', 'location_tier'})}
    assert all(column.description for column in table.columns.values())
    assert table.columns['user_age'].sub_bins == 8 and len(table.columns['user_age'].bins) == 7


def test_example__population_parent_child():
    """The population spec has the child count, derived columns, cross-table stats and rules."""
    # Setup
    spec, metadata = _load('population')

    # Run
    households = spec.get_table('households')
    rules = {rule.name: rule.expression for rule in households.rules}
    person_rules = [rule.expression for rule in spec.get_table('persons').rules]

    # Assert
    assert 'illustrative' in spec.name and 'ILLUSTRATIVE' in spec.context
    child_count = spec.get_relationship('persons').child_count
    assert {key[0] for key in child_count.proportions()} == {2, 3, 4, 5}
    assert {'n_adults', 'has_child', 'has_elderly'} <= set(households.derived_columns)
    assert households.get_statistic('householder_type x has_child').is_joint
    assert rules['person count match'] == f'num_persons == {child_count_column("persons")}'
    assert rules['couple adults'] == "householder_type == 'Couple' -> n_adults >= 2"
    assert "age < 5 -> education == 'Preschool'" in person_rules
    assert "age < 16 -> employment == 'Under 16'" in person_rules
    assert "age >= 16 -> employment != 'Under 16'" in person_rules


def test_example__mobility_partial_joint():
    """The mobility spec bins departure hours as the paper and keeps the OD x time joint partial."""
    # Setup
    spec, _ = _load('mobility')

    # Run
    table = spec.get_table('trips')
    odt = table.get_statistic('origin_zone x destination_zone x departure_time')

    # Assert
    assert table.columns['departure_time'].bins == [0, 6, 9, 12, 14, 17, 20, 24]
    assert not odt.complete and sum(cell.value for cell in odt.cells) <= 1.0
    assert table.get_statistic('departure_time x purpose').is_joint
    assert not table.get_statistic('mode').is_joint
    assert len(table.columns['origin_zone'].categories) == 8


def test_make_example_specs__toy_population_obeys_rules():
    """The toy population behind the illustrative targets satisfies the spec's rules."""
    # Setup
    module_path = REPO / 'evaluation' / 'make_example_specs.py'
    module_spec = importlib.util.spec_from_file_location('make_example_specs', module_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    spec, _ = _load('population')

    # Run
    households, persons = module.simulate_population(200, seed=1)

    # Assert
    counts = persons.groupby('household_id').size()
    adults = persons[persons['age'] >= 18].groupby('household_id').size()
    households = households.assign(
        persons__count=households['household_id'].map(counts).fillna(0),
        n_adults=households['household_id'].map(adults).fillna(0),
    )
    frames = {'households': households, 'persons': persons}
    for table_name, frame in frames.items():
        for rule in spec.get_table(table_name).rules:
            holds = np.asarray(parse_expression(rule.expression).evaluate(frame))
            assert holds.all(), rule.name
