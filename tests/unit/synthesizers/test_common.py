"""Unit tests of the synthesizers' plumbing: specs, planners, formatting, library, constraints."""

import re

import numpy as np
import pandas as pd
import pytest
from sdv.cag import Inequality
from sdv.errors import SynthesizerInputError
from sdv.metadata import Metadata

from sdv_llmsynthor.core.anchors import Anchor
from sdv_llmsynthor.core.validity import ValidityChecker
from sdv_llmsynthor.planners.base import Planner, Range, UsageLedger
from sdv_llmsynthor.planners.statistical import StatisticalPlanner
from sdv_llmsynthor.spec import MacroSpec
from sdv_llmsynthor.synthesizers._common import (
    BudgetedPlanner,
    ConstraintValidity,
    LibraryPlanner,
    build_planner,
    format_table,
    is_whole_number,
    learn_bounds,
    load_spec,
    merge_usage,
)


def test_load_spec__accepts_objects_dicts_and_paths(tmp_path):
    """A MacroSpec is returned as is; dicts and files are loaded."""
    # Setup
    document = {'spec_version': '1.0', 'tables': {'t': {'statistics': [
        {'name': 'g', 'columns': ['g'], 'cells': [{'key': ['a'], 'value': 1.0}]}]}}}
    spec = MacroSpec.from_dict(document)
    path = tmp_path / 'spec.json'
    spec.save(path)

    # Run and Assert
    assert load_spec(spec) is spec
    assert load_spec(document) == spec
    assert load_spec(str(path)) == spec
    with pytest.raises(SynthesizerInputError, match=re.escape('Got int instead.')):
        load_spec(3)


def test_is_whole_number__numbers_without_fraction_only():
    """Integers and integral floats (numpy too) count; booleans, strings and fractions not."""
    # Run and Assert
    assert all(is_whole_number(value) for value in (0, 7, 2.0, np.int64(5), np.float32(3.0)))
    assert not any(is_whole_number(value) for value in (
        True, np.bool_(False), '10', 2.5, float('nan'), float('inf'), None, [1]))


def test_build_planner__names_and_instances():
    """Planner names map to planners; LLM planners get a token budget wrapper."""
    # Setup
    from sdv_llmsynthor.llm.testing import ScriptedClient

    client = ScriptedClient([])

    # Run
    statistical, no_client = build_planner('statistical')
    anchored, anchored_client = build_planner('anchored', client, token_budget=100)
    instance, _ = build_planner(StatisticalPlanner())

    # Assert
    assert isinstance(statistical, StatisticalPlanner) and no_client is None
    assert isinstance(anchored, BudgetedPlanner)
    assert anchored.name == 'anchored' and anchored.uses_llm
    assert anchored.token_budget == 100
    assert anchored_client is client
    assert isinstance(instance, StatisticalPlanner)
    with pytest.raises(SynthesizerInputError, match=re.escape("one of ['anchored', 'free'")):
        build_planner('magic')


def test_format_table__rounds_clips_and_types():
    """Numbers are clipped and rounded as the metadata says; booleans become bool."""
    # Setup
    table_metadata = {'primary_key': 'id', 'columns': {
        'id': {'sdtype': 'id'},
        'count': {'sdtype': 'numerical', 'computer_representation': 'Int64'},
        'price': {'sdtype': 'numerical', 'decimal_places': 2, 'range_min': 0, 'range_max': 10},
        'flag': {'sdtype': 'boolean'},
        'color': {'sdtype': 'categorical'},
        'email': {'sdtype': 'email'},
    }}
    frame = pd.DataFrame({'id': [None, None], 'count': [1.2, 2.7], 'price': [3.14159, 12.5],
                          'flag': ['True', False], 'color': ['red', 'blue'],
                          'email': [None, None]}, index=[5, 9])

    # Run
    out = format_table(frame, table_metadata)

    # Assert
    assert out['id'].tolist() == [0, 1]
    assert out['count'].tolist() == [1, 3]
    assert out['count'].dtype == np.int64
    assert out['price'].tolist() == [3.14, 10.0]
    assert out['flag'].tolist() == [True, False] and out['flag'].dtype == bool
    assert out['color'].tolist() == ['red', 'blue']
    assert out['email'].str.contains('@').all()


def test_format_table__learned_bounds_and_missing_values():
    """Without metadata ranges the real rows' bounds apply; NaN integers become Int64."""
    # Setup
    table_metadata = {'columns': {'age': {'sdtype': 'numerical'}}}
    bounds = learn_bounds(pd.DataFrame({'age': [20, 30, 40]}), table_metadata)
    frame = pd.DataFrame({'age': [10.4, 35.6, np.nan]})

    # Run
    out = format_table(frame, table_metadata, bounds=bounds)

    # Assert
    assert bounds == {'age': {'min': 20.0, 'max': 40.0, 'decimals': 0}}
    assert str(out['age'].dtype) == 'Int64'
    assert out['age'].tolist()[:2] == [20, 36]
    assert pd.isna(out['age'].iloc[2])


def test_merge_usage__adds_counts_and_discards():
    """Usage dicts add up, discards per reason."""
    # Run
    total = merge_usage({'llm_calls': 2, 'prompt_tokens': 10, 'discarded': {'a': 1}},
                        {'llm_calls': 1, 'completion_tokens': 4, 'discarded': {'a': 2, 'b': 1}})

    # Assert
    assert total == {'llm_calls': 3, 'prompt_tokens': 10, 'completion_tokens': 4,
                     'cached_calls': 0, 'discarded': {'a': 3, 'b': 1}}


def test_constraint_validity__rejects_and_names_the_constraint():
    """Records failing a constraint are rejected under 'constraint <repr>'."""
    # Setup
    metadata = Metadata.load_from_dict({'tables': {'t': {'columns': {
        'low': {'sdtype': 'numerical'}, 'high': {'sdtype': 'numerical'}}}}})
    constraint = Inequality(low_column_name='low', high_column_name='high')
    checker = ConstraintValidity(ValidityChecker('t', {}, []), [constraint], metadata)
    frame = pd.DataFrame({'low': [1, 5, 2], 'high': [2, 4, 2]})

    # Run
    result = checker.check(frame)

    # Assert
    assert result.valid.tolist() == [True, False, True]
    assert result.failures[f'constraint {constraint!r}'].tolist() == [False, True, False]
    assert checker.rule_names == []


class _Encoder:
    def __init__(self, categories=None, edges=None):
        self.categories = categories
        self.edges = None if edges is None else np.asarray(edges, dtype=float)
        self.kind = 'numerical' if edges is not None else 'categorical'
        self.derived = None
        self.is_encoded = True
        self.integer = False
        self.minimum = None if edges is None else float(edges[0])
        self.maximum = None if edges is None else float(edges[-1])
        self.values = None

    @property
    def num_codes(self):
        return len(self.categories) if self.categories else len(self.edges) - 1

    def category_code(self, value):
        if self.categories is not None:
            return self.categories.index(value) if value in self.categories else -1
        code = int(np.searchsorted(self.edges, value, side='right') - 1)
        return code if 0 <= code < len(self.edges) - 1 else -1


class _Encoding:
    def __init__(self, encoders):
        self.encoders = encoders


class _State:
    def __init__(self, pool_rows, pool_target, batch_rows=10):
        self.table = 't'
        self.child_table = None
        self.encodings = {'t': _Encoding({'g': _Encoder(categories=['F', 'M']),
                                          'x': _Encoder(edges=[0, 10, 20, 30])})}
        self.pool_rows = pool_rows
        self.pool_target = pool_target
        self.batch_rows = batch_rows
        self.rng = np.random.default_rng(0)
        self.usage = UsageLedger()


def _library():
    return [
        {'assignments': {'g': 'F', 'x': {'range': [0, 10]}}, 'children': None, 'count': 10,
         'accepted': 10, 'selected': 10, 'source': 'statistical', 'reason': ''},
        {'assignments': {'g': 'M', 'x': {'range': [10, 30]}}, 'children': None, 'count': 20,
         'accepted': 10, 'selected': 0, 'source': 'statistical', 'reason': ''},
    ]


def _anchor(fixed_codes, anchor_id=1):
    return Anchor(anchor_id=anchor_id, table='t', statistic='s', cell=0, cell_key=None,
                  fixed={'g': 'M'}, deficit=5.0, records=5, fixed_codes=fixed_codes)


def test_library_planner__fills_the_pool_by_what_calibration_kept():
    """While the pool is short, proposals are drawn by count * selected / accepted."""
    # Setup
    planner = LibraryPlanner(_library())

    # Run
    proposals = planner.propose([], _State(pool_rows=0, pool_target=50, batch_rows=50))

    # Assert
    assert sum(p.count for p in proposals) == 50
    assert {p.assignments['g'] for p in proposals} == {'F'}
    assert all(p.source == 'library' for p in proposals)
    assert proposals[0].assignments['x'] == Range(0, 10)


def test_library_planner__compatibility_of_categories_and_ranges():
    """An anchor is served by the entries that can produce its cell."""
    # Setup
    planner = LibraryPlanner(_library())
    state = _State(pool_rows=50, pool_target=50)

    # Run
    male = planner.compatible(_anchor({'g': (1, 2)}), state)
    high_x = planner.compatible(_anchor({'x': (2, 3)}), state)
    low_male = planner.compatible(_anchor({'g': (1, 2), 'x': (0, 1)}), state)

    # Assert
    assert male.tolist() == [False, True]
    assert high_x.tolist() == [False, True]
    assert low_male.tolist() == [False, False]


def test_library_planner__lacking_cells_go_to_the_fallback():
    """A cell no entry can produce is handed to the fallback planner (built on first need)."""
    # Setup
    class Fallback(Planner):
        name = 'fallback'

        def __init__(self):
            self.anchors = []

        def propose(self, anchors, state):
            self.anchors.extend(anchors)
            state.usage.record_call(1, 1)
            return []

    fallback = Fallback()
    built = []
    planner = LibraryPlanner(_library(), fallback=lambda: built.append(1) or fallback)
    state = _State(pool_rows=50, pool_target=50)

    # Run
    served = planner.propose([_anchor({'g': (1, 2)}, anchor_id=7)], state)
    lacking = planner.propose([_anchor({'g': (1, 2), 'x': (0, 1)}, anchor_id=8)], state)

    # Assert
    assert sum(p.count for p in served) == 5
    assert all(p.anchor_id == 7 for p in served)
    assert lacking == []
    assert [a.anchor_id for a in fallback.anchors] == [8]
    assert built == [1]
    assert planner.lacking == {('s', 0)}
    assert planner.fallback_calls == 1


def test_budgeted_planner__gives_the_llm_only_what_the_budget_covers():
    """One call's anchors first, then what the remaining budget covers; none once it is spent."""
    # Setup
    class Llm(Planner):
        name = 'llm'
        uses_llm = True
        anchors_per_call = 2

        def __init__(self):
            self.seen = []

        def propose(self, anchors, state):
            self.seen.append(len(anchors))
            state.usage.record_call(prompt_tokens=100 * len(anchors), completion_tokens=0)
            return []

    class Counter(Planner):
        name = 'counter'

        def __init__(self):
            self.seen = []

        def propose(self, anchors, state):
            self.seen.append(len(anchors))
            return []

    inner = Llm()
    planner = BudgetedPlanner(inner, token_budget=650)
    planner.fallback = Counter()
    state = _State(pool_rows=0, pool_target=10)
    anchors = [_anchor({'g': (0, 1)}, anchor_id=i) for i in range(10)]

    # Run
    for _ in range(4):
        planner.propose(anchors, state)

    # Assert
    assert inner.seen == [2, 4, 1]
    assert planner.fallback.seen == [8, 6, 9, 10]
    assert state.usage.total_tokens == 700
