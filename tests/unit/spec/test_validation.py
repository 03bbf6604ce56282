"""Tests of spec validation: every malformed spec names the JSON path of its problem."""

import copy
import re

import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.validation import spec_problems, validate_spec

SHOP_METADATA = {
    'tables': {
        'shop': {
            'primary_key': 'id',
            'columns': {
                'id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0},
                'gender': {'sdtype': 'categorical', 'range_values': ['F', 'M']},
                'city': {'sdtype': 'categorical'},
                'member': {'sdtype': 'boolean'},
                'price': {'sdtype': 'numerical'},
                'date': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
            },
        },
    },
}

SHOP_SPEC = {
    'spec_version': '1.0',
    'tables': {
        'shop': {
            'num_rows': 100,
            'columns': {
                'age': {'bins': [18, 30, 50, 90], 'sub_bins': 2},
                'gender': {'categories': ['F', 'M']},
                'city': {'categories': ['Rome', 'Oslo']},
                'date': {'bins': ['2024-01-01', '2024-07-01', '2025-01-01']},
            },
            'statistics': [
                {'name': 'gender', 'columns': ['gender'],
                 'cells': [{'key': ['F'], 'value': 0.5}, {'key': ['M'], 'value': 0.5}]},
                {'name': 'age', 'columns': ['age'],
                 'cells': [{'key': [[18, 30]], 'value': 0.3}, {'key': [[30, 50]], 'value': 0.4},
                           {'key': [[50, 90]], 'value': 0.3}]},
                {'name': 'age x gender', 'columns': ['age', 'gender'], 'measure': 'count',
                 'cells': [{'key': [[18, 24], 'F'], 'value': 10},
                           {'key': [[24, 30], 'F'], 'value': 5},
                           {'key': [[18, 30], 'M'], 'value': 15},
                           {'key': [[30, 50], 'F'], 'value': 20},
                           {'key': [[30, 50], 'M'], 'value': 20},
                           {'key': [[50, 90], 'F'], 'value': 15},
                           {'key': [[50, 90], 'M'], 'value': 15}]},
                {'name': 'member', 'columns': ['member'],
                 'cells': [{'key': [True], 'value': 0.7}, {'key': [False], 'value': 0.3}]},
                {'name': 'date', 'columns': ['date'],
                 'cells': [{'key': [['2024-01-01', '2024-07-01']], 'value': 0.5},
                           {'key': [['2024-07-01', '2025-01-01']], 'value': 0.5}]},
                {'name': 'city partial', 'columns': ['city'], 'complete': False,
                 'cells': [{'key': ['Rome'], 'value': 0.2}]},
            ],
            'rules': [
                {'name': 'adult', 'expression': 'age >= 18'},
                {'name': 'price', 'expression': "price >= 0 and gender in ['F', 'M']"},
            ],
        },
    },
}

HOUSEHOLD_METADATA = {
    'tables': {
        'households': {
            'primary_key': 'hh_id',
            'columns': {
                'hh_id': {'sdtype': 'id'},
                'size': {'sdtype': 'numerical', 'decimal_places': 0},
                'tenure': {'sdtype': 'categorical', 'range_values': ['Own', 'Rent']},
            },
        },
        'persons': {
            'primary_key': 'pid',
            'columns': {
                'pid': {'sdtype': 'id'},
                'hh_id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0},
                'sex': {'sdtype': 'categorical', 'range_values': ['F', 'M']},
            },
        },
    },
    'relationships': [{
        'parent_table_name': 'households', 'parent_primary_key': 'hh_id',
        'child_table_name': 'persons', 'child_foreign_key': 'hh_id',
    }],
}

HOUSEHOLD_SPEC = {
    'spec_version': '1.0',
    'tables': {
        'households': {
            'num_rows': 10,
            'derived_columns': {
                'n_adults': {'child_table': 'persons', 'function': 'count',
                             'predicate': 'age >= 18', 'values': [0, 1, 2, 3]},
                'max_age': {'child_table': 'persons', 'function': 'max', 'column': 'age',
                            'bins': [0, 50, 120]},
            },
            'statistics': [
                {'name': 'tenure', 'columns': ['tenure'],
                 'cells': [{'key': ['Own'], 'value': 0.6}, {'key': ['Rent'], 'value': 0.4}]},
                {'name': 'tenure x n_adults', 'columns': ['tenure', 'n_adults'],
                 'cells': [{'key': ['Own', 2], 'value': 0.5}, {'key': ['Own', 1], 'value': 0.1},
                           {'key': ['Rent', 1], 'value': 0.4}]},
                {'name': 'max age', 'columns': ['max_age'],
                 'cells': [{'key': [[0, 50]], 'value': 0.7}, {'key': [[50, 120]], 'value': 0.3}]},
            ],
            'rules': [
                {'name': 'size', 'expression': 'size == persons__count'},
                {'name': 'adult', 'expression': 'n_adults >= 1'},
            ],
        },
        'persons': {
            'statistics': [
                {'name': 'sex', 'columns': ['sex'],
                 'cells': [{'key': ['F'], 'value': 0.5}, {'key': ['M'], 'value': 0.5}]},
            ],
        },
    },
    'relationships': [{
        'parent_table': 'households', 'child_table': 'persons',
        'child_count': {'cells': [{'key': [1], 'value': 0.3}, {'key': [2], 'value': 0.5},
                                  {'key': [3], 'value': 0.2}]},
    }],
}


def _shop_stats(spec):
    return spec['tables']['shop']['statistics']


def _households(spec):
    return spec['tables']['households']


def _set(path, value):
    """A mutation setting ``spec[path[0]][path[1]]... = value``."""
    def mutate(spec):
        target = spec
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(spec):
        target = spec
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return mutate


def _rename_table(spec):
    spec['tables']['shops'] = spec['tables'].pop('shop')


def _no_city(spec):
    del spec['tables']['shop']['columns']['city']
    del _shop_stats(spec)[5]


def _price_interval(spec):
    _shop_stats(spec).append({'name': 'price', 'columns': ['price'],
                              'cells': [{'key': [[0, 10]], 'value': 1.0}]})


def _id_statistic(spec):
    _shop_stats(spec).append({'name': 'ids', 'columns': ['id'],
                              'cells': [{'key': [1], 'value': 1.0}]})


def _inconsistent_age(spec):
    for cell, value in zip(_shop_stats(spec)[1]['cells'], (0.2, 0.5, 0.3)):
        cell['value'] = value


def _reversed_relationship(spec):
    spec['relationships'][0]['parent_table'] = 'persons'
    spec['relationships'][0]['child_table'] = 'households'


def _max_without_column(spec):
    del _households(spec)['derived_columns']['max_age']['column']


S = ['tables', 'shop']
STATS = S + ['statistics']
H = ['tables', 'households']
DERIVED = H + ['derived_columns']
CHILD_COUNT = ['relationships', 0, 'child_count']

# (id, base spec, mutation, expected JSON path, a fragment of the expected message)
MALFORMED = [
    # --- rejected by the JSON Schema
    ('no spec_version', 'shop', _delete(['spec_version']), '$',
     "'spec_version' is a required property"),
    ('unsupported version', 'shop', _set(['spec_version'], '2.0'), '$.spec_version',
     "unsupported spec_version '2.0'"),
    ('cell without value', 'shop', _delete(STATS + [0, 'cells', 1, 'value']),
     '$.tables.shop.statistics[0].cells[1]', "'value' is a required property"),
    ('zero weight', 'shop', _set(STATS + [0, 'weight'], 0), '$.tables.shop.statistics[0].weight',
     'less than or equal to the minimum of 0'),
    ('tolerance above 1', 'shop', _set(STATS + [1, 'tolerance'], 2),
     '$.tables.shop.statistics[1].tolerance', 'greater than the maximum of 1'),
    ('bins and values', 'shop', _set(S + ['columns', 'age', 'values'], [1, 2]),
     '$.tables.shop.columns.age', 'should not be valid'),
    ('unknown table property', 'shop', _set(S + ['rows'], 5), '$.tables.shop',
     "Additional properties are not allowed ('rows' was unexpected)"),
    ('bad measure', 'shop', _set(STATS + [2, 'measure'], 'percent'),
     '$.tables.shop.statistics[2].measure', "'percent' is not one of"),
    # --- semantic: tables and columns
    ('unknown table', 'shop', _rename_table, '$.tables.shops',
     "unknown table 'shops': the metadata has tables ['shop']. Did you mean 'shop'?"),
    ('unknown column entry', 'shop', _set(S + ['columns', 'agee'], {'bins': [0, 1]}),
     '$.tables.shop.columns.agee', "unknown column 'agee' in table 'shop'"),
    ('unknown statistic column', 'shop', _set(STATS + [0, 'columns'], ['gendr']),
     '$.tables.shop.statistics[0].columns[0]',
     "unknown column 'gendr' in table 'shop'. Did you mean 'gender'?"),
    ('id column in statistic', 'shop', _id_statistic, '$.tables.shop.statistics[6].columns[0]',
     "'id' is an id column; statistics cannot use it."),
    ('nothing to sample', 'shop', _no_city, '$.tables.shop.columns.city',
     "categorical column 'city' has no categories and no statistic"),
    # --- semantic: keys
    ('unknown category', 'shop', _set(STATS + [0, 'cells', 1, 'key'], ['X']),
     '$.tables.shop.statistics[0].cells[1].key[0]',
     "unknown category 'X' for column 'gender': expected one of ['F', 'M']."),
    ('category unknown to metadata', 'shop', _set(S + ['columns', 'gender', 'categories'],
                                                 ['F', 'M', 'Q']),
     '$.tables.shop.columns.gender.categories[2]',
     "category 'Q' is not in the metadata's range_values for 'gender'"),
    ('boolean key not boolean', 'shop', _set(STATS + [3, 'cells', 0, 'key'], ['yes']),
     '$.tables.shop.statistics[3].cells[0].key[0]', "'yes' is not a boolean"),
    ('interval end not an edge', 'shop', _set(STATS + [1, 'cells', 0, 'key'], [[18, 29]]),
     '$.tables.shop.statistics[1].cells[0].key[0][1]',
     "29 is not an edge of the bins or sub-bins of 'age'"),
    ('interval without bins', 'shop', _price_interval,
     '$.tables.shop.statistics[6].cells[0].key[0]', "'price' has no bins"),
    ('scalar on binned column', 'shop', _set(STATS + [1, 'cells', 0, 'key'], [20]),
     '$.tables.shop.statistics[1].cells[0].key[0]', '20 is not an interval'),
    ('overlapping intervals', 'shop', _set(STATS + [1, 'cells', 1, 'key'], [[24, 50]]),
     '$.tables.shop.statistics[1].cells[1].key[0]', 'overlaps [18, 30] of cells[0]'),
    ('wrong key arity', 'shop', _set(STATS + [2, 'cells', 0, 'key'], [[18, 24]]),
     '$.tables.shop.statistics[2].cells[0].key',
     "the key has 1 parts but the statistic has 2 columns ['age', 'gender']."),
    ('duplicate key', 'shop', _set(STATS + [0, 'cells', 1, 'key'], ['F']),
     '$.tables.shop.statistics[0].cells[1].key', "duplicate key ['F']"),
    # --- semantic: bins
    ('bins not increasing', 'shop', _set(S + ['columns', 'age', 'bins'], [18, 50, 30, 90]),
     '$.tables.shop.columns.age.bins[2]', 'bins must be strictly increasing: 30 follows 50.'),
    ('datetime bin not a date', 'shop', _set(S + ['columns', 'date', 'bins', 1], 'July'),
     '$.tables.shop.columns.date.bins[1]', "bin edge 'July' is not an ISO-8601 date"),
    ('bins on a categorical column', 'shop', _set(S + ['columns', 'gender', 'bins'], [0, 1]),
     '$.tables.shop.columns.gender.bins', 'bins are for numerical or datetime columns'),
    # --- semantic: values
    ('proportions not summing to 1', 'shop', _set(STATS + [0, 'cells', 0, 'value'], 0.6),
     '$.tables.shop.statistics[0].cells', 'proportions sum to 1.1, expected 1 (within 0.005)'),
    ('partial table above 1', 'shop', _set(STATS + [5, 'cells', 0, 'value'], 1.2),
     '$.tables.shop.statistics[5].cells', 'proportions of a partial table sum to 1.2'),
    ('negative count', 'shop', _set(STATS + [2, 'cells', 0, 'value'], -10),
     '$.tables.shop.statistics[2].cells[0].value', '-10 is negative'),
    ('duplicate statistic name', 'shop', _set(STATS + [1, 'name'], 'gender'),
     '$.tables.shop.statistics[1].name', "duplicate statistic name 'gender'"),
    ('joint inconsistent with marginal', 'shop', _inconsistent_age,
     '$.tables.shop.statistics[2]',
     "joint 'age x gender' is inconsistent with the marginal 'age' "
     "($.tables.shop.statistics[1]) on column 'age': at [18, 30] its margin is 0.3000 but the "
     'marginal is 0.2000'),
    # --- semantic: expressions
    ('expression does not parse', 'shop', _set(S + ['rules', 0, 'expression'], 'age >='),
     '$.tables.shop.rules[0].expression', 'the expression does not parse'),
    ('unknown column in expression', 'shop', _set(S + ['rules', 1, 'expression'], 'prise >= 0'),
     '$.tables.shop.rules[1].expression',
     "the expression names unknown column 'prise' of table 'shop'. Did you mean 'price'?"),
    # --- semantic: parent/child tables
    ('child_count without relationship', 'households', _reversed_relationship,
     '$.relationships[0].child_count',
     "child_count on a relationship the metadata does not have: no relationship from "
     "'persons' to 'households'"),
    ('relationship to unknown table', 'households',
     _set(['relationships', 0, 'child_table'], 'people'), '$.relationships[0].child_table',
     "unknown table 'people'"),
    ('primary key mismatch', 'households',
     _set(['relationships', 0, 'parent_primary_key'], 'hid'),
     '$.relationships[0].parent_primary_key', "'hid' does not match the metadata"),
    ('child count key not integer', 'households', _set(CHILD_COUNT + ['cells', 0, 'key'], [1.5]),
     '$.relationships[0].child_count.cells[0].key[0]', '1.5 is not a number of child rows'),
    ('child count key negative', 'households', _set(CHILD_COUNT + ['cells', 0, 'key'], [-1]),
     '$.relationships[0].child_count.cells[0].key[0]', '-1 is negative'),
    ('child count not summing to 1', 'households', _set(CHILD_COUNT + ['cells', 0, 'value'], 0.5),
     '$.relationships[0].child_count.cells', 'proportions sum to 1.2'),
    ('derived column on a non-parent', 'households',
     _set(DERIVED + ['n_adults', 'child_table'], 'households'),
     '$.tables.households.derived_columns.n_adults.child_table',
     "'households' is not a child table of 'households'"),
    ('derived max without column', 'households', _max_without_column,
     '$.tables.households.derived_columns.max_age', "function 'max' needs 'column'"),
    ('derived max of a categorical', 'households', _set(DERIVED + ['max_age', 'column'], 'sex'),
     '$.tables.households.derived_columns.max_age.column',
     "function 'max' needs a numerical column"),
    ('predicate names a parent column', 'households',
     _set(DERIVED + ['n_adults', 'predicate'], 'size >= 18'),
     '$.tables.households.derived_columns.n_adults.predicate',
     "unknown column 'size' of child table 'persons'"),
    ('parent rule names a child column', 'households',
     _set(H + ['rules', 1, 'expression'], "sex == 'F'"),
     '$.tables.households.rules[1].expression', "unknown column 'sex' of table 'households'"),
    ('derived key not a value', 'households',
     _set(H + ['statistics', 1, 'cells', 0, 'key'], ['Own', 7]),
     '$.tables.households.statistics[1].cells[0].key[1]',
     "7 is not one of the values of 'n_adults'"),
]


def _metadata(name):
    return Metadata.load_from_dict(SHOP_METADATA if name == 'shop' else HOUSEHOLD_METADATA)


def _base(name):
    return copy.deepcopy(SHOP_SPEC if name == 'shop' else HOUSEHOLD_SPEC)


@pytest.mark.parametrize('base', ['shop', 'households'])
def test_validate_spec__valid(base):
    """The base specs of the malformed cases are valid, as objects and as dicts."""
    # Setup
    spec = MacroSpec.from_dict(_base(base))

    # Run and Assert
    spec.validate(_metadata(base))
    validate_spec(_base(base), _metadata(base))


@pytest.mark.parametrize(('base', 'mutate', 'path', 'message'),
                         [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_validate_spec__malformed(base, mutate, path, message):
    """Each malformed spec is rejected with the JSON path of the offending value."""
    # Setup
    spec_dict = _base(base)
    mutate(spec_dict)

    # Run
    with pytest.raises(SpecValidationError) as error:
        validate_spec(spec_dict, _metadata(base))

    # Assert
    problems = error.value.problems
    assert [p for p, _ in problems] == [path], problems
    assert message in problems[0][1]
    assert f'  - {path}: ' in str(error.value)


def test_validate_spec__malformed_cases_are_distinct():
    """The malformed cases cover at least 20 distinct paths and messages."""
    # Run
    distinct = {(case[3], case[4]) for case in MALFORMED}

    # Assert
    assert len(distinct) == len(MALFORMED) >= 20


def test_validate_spec__reports_every_problem_at_once():
    """Several problems in one spec are all reported in one error."""
    # Setup
    spec_dict = _base('shop')
    _shop_stats(spec_dict)[0]['cells'][0]['value'] = 0.6
    _shop_stats(spec_dict)[2]['cells'][0]['value'] = -10
    spec_dict['tables']['shop']['rules'][0]['expression'] = 'agee >= 18'
    spec_dict['tables']['shop']['columns']['gender']['bins'] = [0, 1]

    # Run
    with pytest.raises(SpecValidationError) as error:
        MacroSpec.from_dict(spec_dict).validate(_metadata('shop'))

    # Assert
    assert [path for path, _ in error.value.problems] == [
        '$.tables.shop.columns.gender.bins',
        '$.tables.shop.statistics[0].cells',
        '$.tables.shop.statistics[2].cells[0].value',
        '$.tables.shop.rules[0].expression',
    ]
    assert str(error.value).startswith('The following errors were found in the spec:\n  - ')


def test_validate_spec__message_is_matchable():
    """The message lists each problem as ``  - <path>: <message>``."""
    # Setup
    spec_dict = _base('shop')
    _shop_stats(spec_dict)[0]['cells'][0]['value'] = 0.6
    expected = ('  - $.tables.shop.statistics[0].cells: proportions sum to 1.1, expected 1 '
                '(within 0.005).')

    # Run and Assert
    with pytest.raises(SpecValidationError, match=re.escape(expected)):
        validate_spec(spec_dict, _metadata('shop'))


def test_validate_spec__joint_within_tolerance():
    """A joint that disagrees with a marginal by less than the tolerance + 0.005 is valid."""
    # Setup
    spec_dict = _base('shop')
    for cell, value in zip(_shop_stats(spec_dict)[1]['cells'], (0.285, 0.415, 0.3)):
        cell['value'] = value
    _shop_stats(spec_dict)[1]['tolerance'] = 0.01

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert problems == []


def test_validate_spec__joint_beyond_tolerance():
    """The same disagreement without a tolerance is reported on the joint."""
    # Setup
    spec_dict = _base('shop')
    for cell, value in zip(_shop_stats(spec_dict)[1]['cells'], (0.285, 0.415, 0.3)):
        cell['value'] = value

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert [path for path, _ in problems] == ['$.tables.shop.statistics[2]']
    assert 'allowed 0.005' in problems[0][1]


def test_validate_spec__coarser_marginal_compared_at_its_resolution():
    """A sub-bin joint is compared with a main-bin marginal after merging its sub-bins."""
    # Setup
    spec_dict = _base('shop')
    _shop_stats(spec_dict)[1]['cells'] = [
        {'key': [[18, 24]], 'value': 0.1}, {'key': [[24, 30]], 'value': 0.2},
        {'key': [[30, 90]], 'value': 0.7},
    ]

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert problems == []


def test_validate_spec__datetime_intervals_and_partial_counts():
    """Datetime intervals at sub-bin edges and partial count tables are accepted."""
    # Setup
    spec_dict = _base('shop')
    spec_dict['tables']['shop']['columns']['date']['sub_bins'] = 2
    _shop_stats(spec_dict).append({
        'name': 'early dates', 'columns': ['date'], 'measure': 'count', 'complete': False,
        'cells': [{'key': [['2024-01-01', '2024-04-01']], 'value': 20}],
    })

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert problems == []


def test_validate_spec__partial_counts_above_num_rows():
    """A partial count table cannot hold more rows than the table."""
    # Setup
    spec_dict = _base('shop')
    _shop_stats(spec_dict).append({
        'name': 'many ages', 'columns': ['age'], 'measure': 'count', 'complete': False,
        'cells': [{'key': [[18, 30]], 'value': 250}],
    })

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert problems == [('$.tables.shop.statistics[6].cells',
                         "the counts of a partial table sum to 250, more than the table's "
                         'num_rows (100).')]


def test_validate_spec__schema_problems_stop_semantic_checks():
    """A document that fails the schema is reported without semantic checks."""
    # Setup
    spec_dict = _base('shop')
    spec_dict['tables']['shop']['statistics'][0]['cells'] = []
    spec_dict['tables']['nope'] = {}

    # Run
    problems = spec_problems(spec_dict, _metadata('shop'))

    # Assert
    assert [path for path, _ in problems] == ['$.tables.shop.statistics[0].cells']


def test_validate_spec__child_count_of_a_table_not_in_the_spec():
    """A child count is checked even when its parent table has no entry in the spec."""
    # Setup
    spec_dict = _base('households')
    del spec_dict['tables']['households']
    spec_dict['relationships'][0]['child_count']['cells'][0]['key'] = [-2]

    # Run
    problems = spec_problems(spec_dict, _metadata('households'))

    # Assert
    assert problems == [('$.relationships[0].child_count.cells[0].key[0]',
                         '-2 is negative: child_count keys are numbers of rows.')]
