"""Unit tests of LLMSynthorMultiTableSynthesizer on households and persons (statistical planner)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sdv.cag import Inequality
from sdv.errors import InvalidDataError, SamplingError, SynthesizerInputError
from sdv.metadata import Metadata

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.synthesizers import (
    LLMSynthorMultiTableSynthesizer,
    LLMSynthorSynthesizer,
)

ROOT = Path(__file__).resolve().parents[3]
POPULATION_SPEC = ROOT / 'specs' / 'examples' / 'population.json'
POPULATION_METADATA = ROOT / 'metadata' / 'population.json'


def _check_keys(data):
    households = data['households']
    persons = data['persons']
    assert households['household_id'].is_unique
    assert persons['person_id'].is_unique
    assert persons['household_id'].isin(households['household_id']).all()
    sizes = persons.groupby('household_id').size()
    assert households['household_id'].isin(sizes.index).all()


def _toy_population(num_households=60, seed=0):
    rng = np.random.default_rng(seed)
    households = []
    persons = []
    person_id = 0
    for household_id in range(num_households):
        size = int(rng.integers(1, 4))
        tenure = rng.choice(['Owned', 'Rented'])
        households.append({'household_id': household_id, 'tenure': tenure,
                           'vehicles': int(rng.integers(0, 3))})
        for position in range(size):
            age = int(rng.integers(18, 80)) if position == 0 else int(rng.integers(0, 80))
            persons.append({'person_id': person_id, 'household_id': household_id, 'age': age,
                            'sex': rng.choice(['F', 'M']),
                            'years_here': int(rng.integers(0, age + 1))})
            person_id += 1
    return {'households': pd.DataFrame(households), 'persons': pd.DataFrame(persons)}


def _toy_metadata():
    return Metadata.load_from_dict({
        'tables': {
            'households': {'primary_key': 'household_id', 'columns': {
                'household_id': {'sdtype': 'id'},
                'tenure': {'sdtype': 'categorical'},
                'vehicles': {'sdtype': 'numerical', 'decimal_places': 0},
            }},
            'persons': {'primary_key': 'person_id', 'columns': {
                'person_id': {'sdtype': 'id'},
                'household_id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0},
                'sex': {'sdtype': 'categorical'},
                'years_here': {'sdtype': 'numerical', 'decimal_places': 0},
            }},
        },
        'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'household_id',
                           'child_table_name': 'persons', 'child_foreign_key': 'household_id'}],
    })


@pytest.fixture(scope='module')
def population():
    """The example population spec fitted with the statistical planner (60 households)."""
    metadata = Metadata.load_from_json(str(POPULATION_METADATA))
    synthesizer = LLMSynthorMultiTableSynthesizer(
        metadata, spec=str(POPULATION_SPEC), planner='statistical', num_rows=60,
        max_iterations=12, verbose=False,
    )
    synthesizer.fit()
    return synthesizer, metadata


def test_fit__population_spec_end_to_end(population):
    """The example population spec fits and samples households with valid keys and rules."""
    # Setup
    synthesizer, metadata = population
    synthesizer.reset_sampling()

    # Run
    data = synthesizer.sample(scale=1.0)

    # Assert
    assert set(data) == {'households', 'persons'}
    assert len(data['households']) == 60
    _check_keys(data)
    metadata.validate_data(data)
    sizes = data['persons'].groupby('household_id').size()
    households = data['households'].set_index('household_id')
    assert (households['num_persons'] == sizes.reindex(households.index)).all()
    report = synthesizer.get_run_report()
    assert {'households', 'persons'} <= set(report['rejections']['table'])
    assert 'couple adults' in set(report['rejections']['rule'])
    assert 'persons_all_valid' in set(report['rejections']['rule'])


def test_sample__validity_rules_hold(population):
    """Person rules of the spec hold on every sampled person."""
    # Setup
    synthesizer, _ = population

    # Run
    persons = synthesizer.sample(scale=2.0)['persons']

    # Assert
    young = persons['age'] < 16
    assert (persons.loc[young, 'employment'] == 'Under 16').all()
    assert (persons.loc[~young, 'employment'] != 'Under 16').all()
    preschool = persons['age'] < 5
    assert (persons.loc[preschool, 'education'] == 'Preschool').all()


def test_sample__num_rows_of_either_table(population):
    """num_rows counts households, or persons when main_table_name is the child table."""
    # Setup
    synthesizer, _ = population

    # Run
    by_households = synthesizer.sample(num_rows=30)
    by_persons = synthesizer.sample(num_rows=90, main_table_name='persons')

    # Assert
    assert len(by_households['households']) == 30
    mean_size = synthesizer._mean_children
    assert len(by_persons['households']) == int(np.ceil(90 / mean_size))
    _check_keys(by_persons)


def test_sample__rejects_bad_scale(population):
    """scale must be a positive number."""
    # Setup
    synthesizer, _ = population

    # Run and Assert
    message = "Invalid parameter for 'scale' (0). Please provide a number that is >0.0."
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.sample(scale=0)


def test_sample_scale__writes_csv_files(population, tmp_path):
    """sample_scale writes one CSV per table when given a folder."""
    # Setup
    synthesizer, _ = population

    # Run
    data = synthesizer.sample_scale(0.5, output_folder_path=str(tmp_path / 'out'))

    # Assert
    for table, frame in data.items():
        written = pd.read_csv(tmp_path / 'out' / f'{table}.csv')
        assert len(written) == len(frame)


def test_save_load__same_samples(population, tmp_path):
    """A saved multi-table synthesizer samples the same after loading."""
    # Setup
    synthesizer, _ = population
    path = tmp_path / 'population.pkl'
    synthesizer.save(path)
    loaded = LLMSynthorMultiTableSynthesizer.load(path)
    synthesizer.reset_sampling()
    loaded.reset_sampling()

    # Run
    original = synthesizer.sample(scale=0.5)
    restored = loaded.sample(scale=0.5)

    # Assert
    for table in original:
        pd.testing.assert_frame_equal(original[table], restored[table])
    assert loaded.get_parameters() == synthesizer.get_parameters()
    assert loaded.get_metadata().to_dict() == synthesizer.get_metadata().to_dict()


def test_fit__from_data_derives_the_spec():
    """fit(data) on a dict of DataFrames derives child counts and statistics, drops the rows."""
    # Setup
    data = _toy_population()
    metadata = _toy_metadata()
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, planner='statistical', num_rows=40,
                                                  max_iterations=10, verbose=False)
    synthesizer.add_constraints([Inequality(low_column_name='years_here',
                                            high_column_name='age', table_name='persons')])

    # Run
    synthesizer.fit(data)
    sampled = synthesizer.sample(scale=1.0)

    # Assert
    spec = synthesizer.get_spec()
    assert spec.relationships[0].child_count is not None
    assert len(sampled['households']) == 40
    metadata.validate_data(sampled)
    assert sampled['persons']['age'].dtype == np.int64
    assert (sampled['persons']['years_here'] <= sampled['persons']['age']).all()
    rules = set(synthesizer.get_run_report()['rejections']['rule'])
    assert any(rule.startswith('constraint Inequality') for rule in rules)


def test_fit__needs_one_parent_and_one_child():
    """Metadata with a single table is rejected with what is supported."""
    # Setup
    metadata = Metadata.load_from_dict({'tables': {'t': {'columns': {
        'a': {'sdtype': 'categorical'}}}}})
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, planner='statistical')

    # Run and Assert
    with pytest.raises(SynthesizerInputError, match='one parent table with one child table'):
        synthesizer.fit({'t': pd.DataFrame({'a': ['x', 'y']})})


def test_sample__before_fit_raises():
    """Sampling before fit raises SDV's SamplingError."""
    # Setup
    synthesizer = LLMSynthorMultiTableSynthesizer(_toy_metadata(), planner='statistical')

    # Run and Assert
    with pytest.raises(SamplingError, match='has not been fitted'):
        synthesizer.sample()


def test_add_constraints__needs_table_name():
    """A constraint without table_name is refused."""
    # Setup
    synthesizer = LLMSynthorMultiTableSynthesizer(_toy_metadata(), planner='statistical')

    # Run and Assert
    with pytest.raises(SynthesizerInputError, match="'table_name' set"):
        synthesizer.add_constraints([Inequality(low_column_name='age',
                                                high_column_name='person_id')])


def test_get_parameters__same_arguments_as_the_single_table_synthesizer():
    """Both synthesizers take the same arguments; each is kept under its own name."""
    # Setup
    metadata = _toy_metadata()

    # Run
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, planner='statistical', seed=3,
                                                  enforce_rounding=False, verbose=False)

    # Assert
    parameters = synthesizer.get_parameters()
    single = LLMSynthorSynthesizer(Metadata.load_from_dict(
        {'tables': {'t': {'columns': {'a': {'sdtype': 'categorical'}}}}})).get_parameters()
    assert set(parameters) == set(single)
    assert parameters['planner'] == 'statistical'
    assert parameters['seed'] == 3
    assert parameters['enforce_rounding'] is False
    assert parameters['enforce_min_max_values'] is True
    assert synthesizer.get_metadata().to_dict() == metadata.to_dict()


def test_sample__batch_size_is_accepted_and_ignored(population):
    """SDV's batch arguments are accepted; the households are the same as without them."""
    # Setup
    synthesizer, _ = population
    synthesizer.reset_sampling()
    plain = synthesizer.sample(num_rows=30)
    synthesizer.reset_sampling()

    # Run
    batched = synthesizer.sample(num_rows=30, batch_size=7, max_tries_per_batch=2)

    # Assert
    assert len(batched['households']) == 30
    for table in plain:
        pd.testing.assert_frame_equal(plain[table], batched[table])


def test_sample__rejects_a_num_rows_that_is_not_a_number(population):
    """A string row count is refused with SDV's message, not a comparison error."""
    # Setup
    synthesizer, _ = population

    # Run and Assert
    message = "Invalid parameter for 'num_rows' (10). Please provide an integer that is greater"
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.sample(num_rows='10')


def test_fit__extra_column_raises_like_sdv():
    """A column the metadata lacks is refused by SDV's own data validation."""
    # Setup
    data = _toy_population(num_households=10)
    data['persons'] = data['persons'].assign(extra=1)
    synthesizer = LLMSynthorMultiTableSynthesizer(_toy_metadata(), planner='statistical',
                                                  verbose=False)

    # Run and Assert
    message = "The columns ['extra'] are not present in the metadata."
    with pytest.raises(InvalidDataError, match=re.escape(message)):
        synthesizer.fit(data)


def test_fit__spec_mismatch_reports_the_json_path():
    """A spec naming a column the metadata lacks fails with the JSON path of the problem."""
    # Setup
    spec = json.loads(POPULATION_SPEC.read_text())
    spec['tables']['persons']['statistics'][0]['columns'] = ['shoe_size']
    metadata = Metadata.load_from_json(str(POPULATION_METADATA))
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, spec=spec, planner='statistical',
                                                  verbose=False)

    # Run and Assert
    message = ("$.tables.persons.statistics[0].columns[0]: unknown column 'shoe_size' in table "
               "'persons'.")
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        synthesizer.fit()


def test_sample__positional_arguments_follow_sdv_2(population):
    """``sample(30, 'households', 7)`` is num_rows, main_table_name, batch_size, as in SDV 2.x."""
    # Setup
    synthesizer, _ = population
    synthesizer.reset_sampling()
    by_name = synthesizer.sample(num_rows=30, main_table_name='households', batch_size=7)
    synthesizer.reset_sampling()

    # Run
    positional = synthesizer.sample(30, 'households', 7)

    # Assert
    assert len(positional['households']) == 30
    for table in by_name:
        pd.testing.assert_frame_equal(by_name[table], positional[table])


def test_sample__a_fraction_as_num_rows_points_to_scale(population):
    """SDV 1.x's ``sample(0.5)`` meant scale: the error says how to ask for it now."""
    # Setup
    synthesizer, _ = population

    # Run and Assert
    message = 'pass it by name: sample(scale=0.5)'
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.sample(0.5)
    with pytest.raises(TypeError):
        synthesizer.sample(None, None, None, 100, None, 0.5)
