"""Small specs, planner states and a schema-following fake LLM for the LLM planner tests."""

import copy

import numpy as np

from sdv_llmsynthor.core.aggregate import StatisticCounts
from sdv_llmsynthor.core.anchors import Anchor
from sdv_llmsynthor.core.discrepancy import compute_discrepancy
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.planners.base import PlannerState, Range, UsageLedger
from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.resolve import resolve_columns

SHOP_METADATA = {
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

SHOP_SPEC = {
    'spec_version': '1.0',
    'name': 'shop',
    'context': 'Purchases in a small online shop.',
    'tables': {
        'shop': {
            'num_rows': 200,
            'columns': {
                'age': {'bins': [18, 30, 45, 90], 'sub_bins': 2, 'description': 'Age in years'},
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
            'rules': [{'name': 'adult', 'expression': 'age >= 18'}],
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
        },
    },
    'relationships': [{
        'parent_table': 'households', 'child_table': 'persons',
        'child_count': {'cells': [{'key': [1], 'value': 0.3}, {'key': [2], 'value': 0.5},
                                  {'key': [3], 'value': 0.2}]},
    }],
}


def shop_spec(**table_updates):
    """The shop spec as a MacroSpec, with optional overrides of the table's entries."""
    document = copy.deepcopy(SHOP_SPEC)
    document['tables']['shop'].update(copy.deepcopy(table_updates))
    return MacroSpec.from_dict(document)


def household_spec():
    """The households/persons spec as a MacroSpec."""
    return MacroSpec.from_dict(copy.deepcopy(HOUSEHOLD_SPEC))


def make_state(spec, metadata, table, child_table=None, anchors=(), seed=0, batch_rows=100,
               usage=None, rules_text=None):
    """A PlannerState at the start of a run (empty pool: every cell is a deficit)."""
    tables = [table] + ([child_table] if child_table else [])
    resolved = {name: resolve_columns(spec, metadata, name) for name in tables}
    encodings = {name: compile_table(spec, metadata, name, resolved[name]) for name in tables}
    statistics = [s for name in tables for s in encodings[name].statistics]
    counts = StatisticCounts(statistics, dict.fromkeys(tables, 0))
    target_rows = {table: 200.0}
    if child_table:
        target_rows[child_table] = 400.0
    discrepancy = compute_discrepancy(counts, target_rows)
    if rules_text is None:
        rules_text = {name: [f'{rule.name}: {rule.expression}'
                             for rule in spec.tables[name].rules]
                      for name in tables if name in spec.tables}
    return PlannerState(
        spec=spec, metadata=metadata, table=table, child_table=child_table, columns=resolved,
        encodings=encodings, statistics=statistics, discrepancy=discrepancy,
        rules_text=rules_text, context_text=spec.context or '',
        rng=np.random.default_rng(seed), iteration=0, requested_rows=200, pool_rows=0,
        pool_target=240, batch_rows=batch_rows, usage=usage or UsageLedger(),
        anchors=list(anchors),
    )


def schema_instance(schema, rng, pick_first=False):
    """A random value valid against one of the planners' schemas (a fake, obedient LLM)."""
    if 'enum' in schema:
        options = schema['enum']
        return options[0] if pick_first else options[int(rng.integers(len(options)))]
    kind = schema.get('type')
    if kind == 'object':
        return {name: schema_instance(sub, rng, pick_first)
                for name, sub in schema['properties'].items()}
    if kind == 'array':
        low = schema.get('minItems', 0)
        high = schema.get('maxItems', low + 3)
        size = low if pick_first else int(rng.integers(low, high + 1))
        return [schema_instance(schema['items'], rng, pick_first) for _ in range(size)]
    if kind == 'integer':
        return int(rng.integers(1, 50))
    if kind == 'number':
        return float(np.round(rng.uniform(1, 10), 2))
    if kind == 'string':
        return 'because it is realistic'
    return None


def obedient_responder(seed=0, pick_first=False):
    """A ScriptedClient responder writing a random schema-valid reply to every request."""
    rng = np.random.default_rng(seed)

    def respond(messages, schema, params):
        return schema_instance(schema, rng, pick_first)

    return respond


def make_anchor(anchor_id, fixed, records=20, table='shop'):
    """An anchor on ``fixed`` (its fine codes computed as the engine does)."""
    metadata, spec = (SHOP_METADATA, shop_spec()) if table == 'shop' else (
        HOUSEHOLD_METADATA, household_spec())
    encoders = compile_table(spec, metadata, table).encoders
    codes = {}
    for column, value in fixed.items():
        part = (value.low, value.high) if isinstance(value, Range) else value
        codes[column] = encoders[column].key_part_to_code_range(part)
    text = ' & '.join(f'{column} = {value}' for column, value in fixed.items())
    return Anchor(anchor_id=anchor_id, table=table, statistic='test', cell=0, cell_key=None,
                  fixed=dict(fixed), deficit=float(records), records=records, text=text,
                  fixed_codes=codes)
