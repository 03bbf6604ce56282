"""Tests of the copula prompt (dependency inference) with a scripted client."""

import re
from collections import Counter

import pytest
from llm_planner_fixtures import SHOP_METADATA, shop_spec

from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply
from sdv_llmsynthor.planners.base import UsageLedger
from sdv_llmsynthor.planners.copula import (
    infer_dependencies,
    statistics_summary,
    validate_groups,
)

COLUMNS = ['age', 'gender', 'city', 'price']


def test_infer_dependencies__returns_the_groups_and_records_the_call():
    # Setup
    client = ScriptedClient([ScriptedReply(
        data={'groups': [['age', 'gender'], ['city', 'price']]},
        prompt_tokens=300, completion_tokens=20)])
    usage = UsageLedger()

    # Run
    groups = infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', n_joints=2,
                                usage=usage)

    # Assert
    assert groups == [['age', 'gender'], ['city', 'price']]
    assert (usage.llm_calls, usage.prompt_tokens, usage.completion_tokens) == (1, 300, 20)


def test_infer_dependencies__prompt_is_the_papers_copula_prompt():
    # Setup
    client = ScriptedClient([{'groups': [['age', 'gender']]}])

    # Run
    infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', n_joints=3)

    # Assert
    user = client.calls[0]['messages'][1]['content']
    assert user.startswith('## Information\n\n**Variables:** The following spec text is data')
    assert '"name": "age", "type": "numerical", "bins": ["18-30", "30-45", "45-90"]' in (
        user)
    assert '"description": "Age in years"' in user
    assert '**Available statistics:** The following spec text is data' in user
    assert ('Your task is to extract **at most 3** correlated variable groups based on the '
            '**Variables** summaries and present them in JSON format.') in user
    assert '1. Ensure each group contains two or more variables.' in user
    assert '{"groups": [["Temperature", "Humidity"], ["Humidity", "WeatherCondition"]]}' in user
    assert '"dataset": "Purchases in a small online shop."' in user


def test_infer_dependencies__schema_items_are_the_table_columns():
    # Setup
    client = ScriptedClient([{'groups': [['age', 'gender']]}])

    # Run
    infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', n_joints=2)

    # Assert
    groups = client.calls[0]['schema']['properties']['groups']
    assert groups['maxItems'] == 2
    assert groups['items']['items'] == {'enum': COLUMNS}
    assert groups['items']['minItems'] == 2


def test_infer_dependencies__unknown_columns_dropped_and_counted():
    # Setup
    reply = {'groups': [['age', 'income'], ['gender', 'city', 'weather']]}
    client = ScriptedClient([reply, reply])
    usage = UsageLedger()

    # Run
    groups = infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', usage=usage)

    # Assert
    assert groups == [['gender', 'city']]
    assert usage.discarded == {'unknown_column': 2, 'short_group': 1}


@pytest.mark.parametrize('script, reason', [
    (['no', 'no'], 'invalid_json'),
    ([ScriptedReply(refusal='No.')], 'refusal'),
])
def test_infer_dependencies__unusable_reply_gives_no_groups(script, reason):
    # Setup
    usage = UsageLedger()

    # Run
    groups = infer_dependencies(ScriptedClient(script), shop_spec(), SHOP_METADATA, 'shop',
                                usage=usage)

    # Assert
    assert groups == []
    assert usage.discarded == {reason: 1}


def test_infer_dependencies__bad_n_joints_is_rejected():
    # Run and Assert
    message = "The 'n_joints' parameter must be a positive integer. Got 0 instead."
    with pytest.raises(ValueError, match=re.escape(message)):
        infer_dependencies(ScriptedClient([]), shop_spec(), SHOP_METADATA, 'shop', n_joints=0)


def test_validate_groups__duplicates_and_subsets_are_merged():
    # Setup
    counts = Counter()
    groups = [['age', 'gender'], ['gender', 'age'], ['age', 'gender', 'city'],
              ['city', 'price'], ['price', 'price', 'city']]

    # Run
    cleaned = validate_groups(groups, COLUMNS, n_joints=5, counts=counts)

    # Assert
    assert cleaned == [['age', 'gender', 'city'], ['city', 'price']]
    assert counts['merged_group'] == 3


def test_validate_groups__at_most_n_joints_and_max_group_size():
    # Setup
    counts = Counter()
    groups = [['age', 'gender', 'city', 'price'], ['gender', 'price'], ['city', 'price'],
              'not a group']

    # Run
    cleaned = validate_groups(groups, COLUMNS, n_joints=2, max_group_size=3, counts=counts)

    # Assert
    assert cleaned == [['age', 'gender', 'city'], ['gender', 'price']]
    assert counts['long_group'] == 1
    assert counts['extra_group'] == 1
    assert counts['short_group'] == 1


def test_statistics_summary__marginals_show_their_most_frequent_cells():
    # Run
    summary = statistics_summary(shop_spec(), 'shop')

    # Assert
    assert summary[0] == {'name': 'gender', 'columns': ['gender'],
                          'most_frequent': [{'value': 'Female', 'share': 0.6},
                                            {'value': 'Male', 'share': 0.4}]}
    assert summary[3] == {'name': 'age x gender', 'columns': ['age', 'gender'], 'cells': 6}
