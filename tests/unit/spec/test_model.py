"""Tests of the spec object model: loading, saving and round trips."""

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.model import (
    Cell,
    MacroSpec,
    StatisticSpec,
    child_count_column,
)

SPEC = {
    'spec_version': '1.0',
    'name': 'tiny',
    'context': 'A tiny test population.',
    'tables': {
        'households': {
            'num_rows': 4,
            'columns': {'tenure': {'categories': ['Own', 'Rent'], 'description': 'Tenure.'}},
            'derived_columns': {
                'has_child': {'child_table': 'persons', 'function': 'any',
                              'predicate': 'age < 18'},
            },
            'statistics': [
                {'name': 'tenure', 'columns': ['tenure'], 'measure': 'count', 'weight': 2.0,
                 'tolerance': 0.01, 'source': 'census',
                 'cells': [{'key': ['Own'], 'value': 3}, {'key': ['Rent'], 'value': 1}]},
            ],
            'rules': [{'name': 'sized', 'expression': 'persons__count >= 1'}],
        },
        'persons': {
            'columns': {'age': {'bins': [0, 18, 99], 'sub_bins': 2, 'missing_proportion': 0.1}},
            'statistics': [
                {'name': 'age', 'columns': ['age'], 'complete': False,
                 'cells': [{'key': [[0, 9]], 'value': 0.25}]},
            ],
        },
    },
    'relationships': [{
        'parent_table': 'households', 'child_table': 'persons',
        'child_count': {'cells': [{'key': [1], 'value': 0.5}, {'key': [2], 'value': 0.5}]},
    }],
}


def test_from_dict__to_dict_round_trip():
    """A document read and written back is unchanged (defaults are not written)."""
    # Run
    spec = MacroSpec.from_dict(copy.deepcopy(SPEC))

    # Assert
    assert spec.to_dict() == SPEC


def test_from_dict__does_not_mutate_input():
    """The caller's dict is not modified."""
    # Setup
    spec_dict = copy.deepcopy(SPEC)

    # Run
    MacroSpec.from_dict(spec_dict)

    # Assert
    assert spec_dict == SPEC


def test_from_dict__child_count_is_a_parent_statistic():
    """The child-count distribution is exposed as an implicit statistic of the parent."""
    # Run
    spec = MacroSpec.from_dict(copy.deepcopy(SPEC))

    # Assert
    households = spec.get_table('households')
    column = child_count_column('persons')
    statistic = households.statistics[-1]
    assert column == 'persons__count'
    assert statistic.implicit and statistic.columns == (column,)
    assert statistic.proportions() == {(1,): 0.5, (2,): 0.5}
    assert households.derived_columns[column].function == 'count'
    assert households.derived_columns[column].values == [1, 2]
    assert spec.get_relationship('persons').child_count is statistic


def test_save__load_round_trip(tmp_path):
    """save then load gives an equal spec."""
    # Setup
    spec = MacroSpec.from_dict(copy.deepcopy(SPEC))
    path = tmp_path / 'spec.json'

    # Run
    spec.save(path)
    loaded = MacroSpec.load(path)

    # Assert
    assert loaded == spec
    assert json.loads(path.read_text(encoding='utf-8')) == SPEC


def test_load__not_json(tmp_path):
    """A file that is not JSON is a SpecValidationError at the root path."""
    # Setup
    path = tmp_path / 'broken.json'
    path.write_text('{"spec_version": "1.0",', encoding='utf-8')

    # Run and Assert
    with pytest.raises(SpecValidationError, match=re.escape('  - $: ')):
        MacroSpec.load(path)


def test_from_dict__schema_problems_listed():
    """Schema problems are collected with their paths."""
    # Setup
    spec_dict = copy.deepcopy(SPEC)
    spec_dict['tables']['households']['num_rows'] = 0
    spec_dict['tables']['persons']['columns']['age']['sub_bins'] = 'two'

    # Run
    with pytest.raises(SpecValidationError) as error:
        MacroSpec.from_dict(spec_dict)

    # Assert
    assert [path for path, _ in error.value.problems] == [
        '$.tables.households.num_rows',
        '$.tables.persons.columns.age.sub_bins',
    ]


def test_statistic_proportions__counts():
    """Complete counts are divided by their total, partial counts by num_rows."""
    # Setup
    cells = [Cell(('a',), 30), Cell(('b',), 10)]
    complete = StatisticSpec('s', ('x',), cells, measure='count')
    partial = StatisticSpec('s', ('x',), cells, measure='count', complete=False)

    # Run
    complete_shares = complete.proportions(num_rows=100)
    partial_shares = partial.proportions(num_rows=100)

    # Assert
    assert complete_shares == {('a',): 0.75, ('b',): 0.25}
    assert partial_shares == {('a',): 0.3, ('b',): 0.1}


def test_from_data__to_dict_load_gives_same_targets(tmp_path):
    """from_data -> to_dict -> save -> load gives the same targets, cell by cell."""
    # Setup
    from sdv.metadata import Metadata

    rng = np.random.default_rng(0)
    data = pd.DataFrame({
        'age': rng.integers(18, 90, 500),
        'income': rng.lognormal(10, 1, 500).round(2),
        'color': rng.choice(['red', 'green', 'blue'], 500),
        'vehicles': rng.integers(0, 4, 500),
    })
    metadata = Metadata.detect_from_dataframes({'people': data})
    spec = MacroSpec.from_data(data, metadata, joints=[['age', 'color']])
    path = tmp_path / 'derived.json'

    # Run
    spec.save(path)
    loaded = MacroSpec.load(path)

    # Assert
    assert loaded == spec
    original = spec.get_table('people')
    reloaded = loaded.get_table('people')
    assert [s.name for s in reloaded.statistics] == [s.name for s in original.statistics]
    for before, after in zip(original.statistics, reloaded.statistics):
        assert after.columns == before.columns
        assert after.proportions() == before.proportions()
    assert reloaded.columns['age'].bins == original.columns['age'].bins
    loaded.validate(metadata)


def test_get_table__unknown():
    """get_table names the known tables."""
    # Setup
    spec = MacroSpec.from_dict(copy.deepcopy(SPEC))

    # Run and Assert
    with pytest.raises(KeyError, match=re.escape("Tables: households, persons.")):
        spec.get_table('people')
