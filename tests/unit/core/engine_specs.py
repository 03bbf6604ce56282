"""Small specs and metadata shared by the engine tests (built in code, no data files)."""

import copy

from sdv_llmsynthor.spec.model import MacroSpec

SINGLE_METADATA = {
    'tables': {
        'shop': {
            'primary_key': 'id',
            'columns': {
                'id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'computer_representation': 'Int64'},
                'gender': {'sdtype': 'categorical'},
                'city': {'sdtype': 'categorical'},
                'price': {'sdtype': 'numerical', 'computer_representation': 'Float'},
            },
        },
    },
    'relationships': [],
}

SINGLE_SPEC = {
    'spec_version': '1.0',
    'name': 'shop',
    'tables': {
        'shop': {
            'num_rows': 200,
            'columns': {
                'age': {'bins': [18, 30, 45, 90], 'sub_bins': 2},
                'gender': {'categories': ['Male', 'Female']},
                'city': {'categories': ['Paris', 'Lyon', 'Nice']},
                'price': {'bins': [0, 10, 100, 1000]},
            },
            'statistics': [
                {'name': 'gender', 'columns': ['gender'],
                 'cells': [{'key': ['Male'], 'value': 0.4}, {'key': ['Female'], 'value': 0.6}]},
                {'name': 'city', 'columns': ['city'],
                 'cells': [{'key': ['Paris'], 'value': 0.5}, {'key': ['Lyon'], 'value': 0.3},
                           {'key': ['Nice'], 'value': 0.2}]},
                {'name': 'age', 'columns': ['age'],
                 'cells': [{'key': [[18, 24]], 'value': 0.15}, {'key': [[24, 30]], 'value': 0.15},
                           {'key': [[30, 37.5]], 'value': 0.2},
                           {'key': [[37.5, 45]], 'value': 0.1},
                           {'key': [[45, 67.5]], 'value': 0.25},
                           {'key': [[67.5, 90]], 'value': 0.15}]},
                {'name': 'age x gender', 'columns': ['age', 'gender'],
                 'cells': [{'key': [[18, 30], 'Male'], 'value': 0.1},
                           {'key': [[18, 30], 'Female'], 'value': 0.2},
                           {'key': [[30, 45], 'Male'], 'value': 0.15},
                           {'key': [[30, 45], 'Female'], 'value': 0.15},
                           {'key': [[45, 90], 'Male'], 'value': 0.15},
                           {'key': [[45, 90], 'Female'], 'value': 0.25}]},
                {'name': 'price', 'columns': ['price'],
                 'cells': [{'key': [[0, 10]], 'value': 0.3}, {'key': [[10, 100]], 'value': 0.5},
                           {'key': [[100, 1000]], 'value': 0.2}]},
            ],
        },
    },
}

HOUSEHOLD_METADATA = {
    'tables': {
        'households': {
            'primary_key': 'household_id',
            'columns': {
                'household_id': {'sdtype': 'id'},
                'tenure': {'sdtype': 'categorical'},
            },
        },
        'persons': {
            'primary_key': 'person_id',
            'columns': {
                'person_id': {'sdtype': 'id'},
                'household_id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'computer_representation': 'Int64'},
                'sex': {'sdtype': 'categorical'},
            },
        },
    },
    'relationships': [{
        'parent_table_name': 'households', 'parent_primary_key': 'household_id',
        'child_table_name': 'persons', 'child_foreign_key': 'household_id',
    }],
}

HOUSEHOLD_SPEC = {
    'spec_version': '1.0',
    'tables': {
        'households': {
            'num_rows': 60,
            'columns': {'tenure': {'categories': ['Owned', 'Rented']}},
            'derived_columns': {
                'has_child': {'child_table': 'persons', 'function': 'any',
                              'predicate': 'age < 18'},
            },
            'statistics': [
                {'name': 'tenure', 'columns': ['tenure'],
                 'cells': [{'key': ['Owned'], 'value': 0.6}, {'key': ['Rented'], 'value': 0.4}]},
                {'name': 'tenure x size', 'columns': ['tenure', 'persons__count'],
                 'cells': [{'key': ['Owned', 1], 'value': 0.1},
                           {'key': ['Owned', 2], 'value': 0.3},
                           {'key': ['Owned', 3], 'value': 0.2},
                           {'key': ['Rented', 1], 'value': 0.2},
                           {'key': ['Rented', 2], 'value': 0.2},
                           {'key': ['Rented', 3], 'value': 0.0}]},
                {'name': 'has_child', 'columns': ['has_child'],
                 'cells': [{'key': [False], 'value': 0.7}, {'key': [True], 'value': 0.3}]},
            ],
            'rules': [{'name': 'someone lives there', 'expression': 'persons__count >= 1'}],
        },
        'persons': {
            'columns': {
                'age': {'bins': [0, 18, 65, 100]},
                'sex': {'categories': ['Female', 'Male']},
            },
            'statistics': [
                {'name': 'age', 'columns': ['age'],
                 'cells': [{'key': [[0, 18]], 'value': 0.2}, {'key': [[18, 65]], 'value': 0.6},
                           {'key': [[65, 100]], 'value': 0.2}]},
                {'name': 'sex', 'columns': ['sex'],
                 'cells': [{'key': ['Female'], 'value': 0.5}, {'key': ['Male'], 'value': 0.5}]},
            ],
            'rules': [{'name': 'age range', 'expression': 'age >= 0 and age <= 100'}],
        },
    },
    'relationships': [{
        'parent_table': 'households', 'child_table': 'persons',
        'child_count': {'cells': [{'key': [1], 'value': 0.3}, {'key': [2], 'value': 0.5},
                                  {'key': [3], 'value': 0.2}]},
    }],
}


def single_spec(**table_updates):
    """The single-table spec as a MacroSpec, with optional overrides of the table's entries."""
    document = copy.deepcopy(SINGLE_SPEC)
    document['tables']['shop'].update(copy.deepcopy(table_updates))
    return MacroSpec.from_dict(document)


def household_spec():
    """The households/persons spec as a MacroSpec."""
    return MacroSpec.from_dict(copy.deepcopy(HOUSEHOLD_SPEC))
