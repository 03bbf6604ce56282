"""Tests of the short bin labels the prompts show for numeric columns."""

from types import SimpleNamespace

import numpy as np
import pytest

from sdv_llmsynthor.llm.prompts import (
    AnchorPrompt,
    ColumnPrompt,
    anchored_messages,
    range_text,
    short_bin_labels,
)


def _column(edges, kind='numerical'):
    return ColumnPrompt.from_resolved(SimpleNamespace(
        name='x', kind=kind, main_edges=edges, min=edges[0], max=edges[-1]))


def test_short_bin_labels__rounds_edges_to_the_fewest_decimals_that_keep_them_apart():
    # Run
    labels = short_bin_labels([18.05, 22.55, 26.26, 30.62, 38.8, 50.78, 86.86])

    # Assert
    assert labels == ['18-23', '23-26', '26-31', '31-39', '39-51', '51-87']


@pytest.mark.parametrize('edges, expected', [
    ([0, 153, 302, 1991], ['0-153', '153-302', '302-1991']),
    ([0, 0.001, 0.002, 0.5], ['0-0.001', '0.001-0.002', '0.002-0.5']),
    ([18.4, 18.6, 30], ['18.4-18.6', '18.6-30']),
    ([-10, -5, 0, 5], ['-10 to -5', '-5 to 0', '0 to 5']),
])
def test_short_bin_labels__examples(edges, expected):
    # Run
    labels = short_bin_labels(edges)

    # Assert
    assert labels == expected


def test_short_bin_labels__none_when_edges_are_too_close():
    # Run
    labels = short_bin_labels([0.0, 1e-9, 1.0])

    # Assert
    assert labels is None


@pytest.mark.parametrize('scale', [1e-4, 1e-2, 1.0, 37.0, 1e3, 1e6])
def test_short_bin_labels__distinct_and_close_to_the_edges_at_many_scales(scale):
    # Setup
    rng = np.random.default_rng(int(scale * 1000) % 2**31)
    for _ in range(20):
        edges = np.sort(rng.uniform(-1, 3, size=8)) * scale
        if np.min(np.diff(edges)) <= 0:
            continue

        # Run
        labels = short_bin_labels(list(edges))

        # Assert
        if labels is None:
            continue
        assert len(set(labels)) == len(labels) == len(edges) - 1
        widths = np.diff(edges)
        for position, label in enumerate(labels):
            low, high = (float(part) for part in label.split(' to ' if ' to ' in label
                                                             else '-'))
            assert abs(low - edges[position]) <= 0.125 * widths[position] + 1e-12
            assert abs(high - edges[position + 1]) <= 0.125 * widths[position] + 1e-12


def test_column_prompt__labels_map_back_to_the_exact_edges_and_input_is_not_mutated():
    # Setup
    edges = [18.05, 22.55, 26.26, 86.86]

    # Run
    column = _column(edges)

    # Assert
    assert column.labels == {'18-23': (18.05, 22.55), '23-26': (22.55, 26.26),
                             '26-87': (26.26, 86.86)}
    assert column.choices == ['18-23', '23-26', '26-87']
    assert edges == [18.05, 22.55, 26.26, 86.86]


def test_column_prompt__label_of_a_sub_bin_and_of_a_main_bin():
    # Setup
    column = _column([18.05, 22.55, 86.86])

    # Assert
    assert column.label_of(18.05, 22.55) == '18-23'
    assert column.label_of(30.0, 45.5) == '30-45.5'


def test_column_prompt__datetime_columns_keep_interval_labels():
    # Setup
    day = 86400.0
    column = _column([0.0, day, 2 * day], kind='datetime')

    # Assert
    assert list(column.labels) == ['[1970-01-01, 1970-01-02)', '[1970-01-02, 1970-01-03]']


def test_range_text__negative_columns_use_to():
    # Assert
    assert range_text(-5, 0) == '-5 to 0'
    assert range_text(0, 5) == '0-5'
    assert range_text(0, 5, negative=True) == '0 to 5'


def test_anchored_messages__leave_out_rules_on_one_binned_column():
    # Setup

    age = ColumnPrompt(name='age', kind='numerical', labels={'18-30': (18.0, 30.0),
                                                              '30-90': (30.0, 90.0)},
                       minimum=18.0, maximum=90.0)
    city = ColumnPrompt(name='city', kind='categorical', categories=['Paris', 'Lyon'])
    anchor = AnchorPrompt(key='anchor_1', fixed={'city': 'Lyon'}, records=5,
                          schema={'type': 'object'}, completions=2)
    rules = ['adult: age >= 18', 'lyon is old: city != "Lyon" or age >= 30']

    # Run
    user = anchored_messages([anchor], [age, city], 'people', rules=rules)[1]['content']

    # Assert
    assert 'adult' not in user
    assert 'lyon is old' in user
    assert 'Respect the validity rules.' in user
    assert '{"name":"city","categories":["Paris","Lyon"]}' in user
    assert '"type":"numerical"' in user
