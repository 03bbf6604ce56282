"""Sized calls and cut-off replies of the LLM planners (scripted client, no model)."""

import json

import numpy as np
from llm_planner_fixtures import (
    SHOP_METADATA,
    make_anchor,
    make_state,
    schema_instance,
    shop_spec,
)

from sdv_llmsynthor.errors import LLMTruncatedOutputError
from sdv_llmsynthor.llm.structured import estimate_reply_tokens
from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply
from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner
from sdv_llmsynthor.planners.base import Range, UsageLedger
from sdv_llmsynthor.planners.copula import infer_dependencies
from sdv_llmsynthor.planners.free import FreeLLMPlanner
from sdv_llmsynthor.planners.llm_planner import call_max_tokens, valid_items
from sdv_llmsynthor.planners.repair import call_llm


def _shop_state(**kwargs):
    return make_state(shop_spec(), SHOP_METADATA, 'shop', **kwargs)


def _prompt_chars(call):
    return sum(len(message['content']) for message in call['messages'])


def _cut(reply, key, complete, partial='{"gender": "Female", "age": "[1'):
    """The text of ``reply`` cut off after ``complete`` items of ``reply[key]``."""
    head = json.dumps({key: reply[key][:complete]})[:-2]
    separator = ', ' if complete else ''
    return f'{head}{separator}{partial}'


class _Counting:
    def __init__(self):
        self.counts = {}

    def discard(self, reason, n=1):
        self.counts[reason] = self.counts.get(reason, 0) + n


def test_call_max_tokens__estimate_capped_by_the_planner_limit():
    # Setup
    schema = {'type': 'object', 'properties': {'a': {'type': 'array', 'maxItems': 10,
                                                     'items': {'enum': ['x', 'y']}}}}

    # Run
    needed = call_max_tokens(schema)
    capped = call_max_tokens(schema, 20)
    generous = call_max_tokens(schema, 10_000)

    # Assert
    assert needed == estimate_reply_tokens(schema)
    assert capped == 20
    assert generous == needed


def test_valid_items__keeps_schema_valid_items_and_counts_the_others():
    # Setup
    item_schema = {'type': 'object', 'properties': {'a': {'enum': [1, 2]}}, 'required': ['a']}
    repairer = _Counting()

    # Run
    kept = valid_items([{'a': 1}, {}, {'a': 3}, {'a': 2}], item_schema, repairer)
    none = valid_items(None, item_schema, repairer)

    # Assert
    assert kept == [{'a': 1}, {'a': 2}]
    assert none == []
    assert repairer.counts == {'truncated_record': 2}


def test_call_llm__truncated_reply_keeps_its_complete_part():
    # Setup
    schema = {'type': 'object', 'properties': {'a': {'type': 'array', 'items': {'enum': [1, 2]}}},
              'required': ['a']}
    client = ScriptedClient([ScriptedReply(text='{"a": [1, 2, ', finish_reason='length')])
    usage = UsageLedger()

    # Run
    result = call_llm(client, [{'role': 'user', 'content': 'Q'}], schema, {'max_tokens': 5},
                      usage)

    # Assert
    assert result.data == {'a': [1, 2]}
    assert result.truncated and result.salvaged
    assert result.failure is None
    assert len(client.calls) == 1
    assert usage.llm_calls == 1


def test_call_llm__truncated_reply_with_nothing_complete_is_a_discard_reason():
    # Setup
    client = ScriptedClient([ScriptedReply(text='{"a": [', finish_reason='length')])

    # Run
    result = call_llm(client, [{'role': 'user', 'content': 'Q'}], {'type': 'object'}, {})

    # Assert
    assert result.data is None
    assert result.failure == 'truncated_reply'


def test_complete_json__truncated_reply_raises_with_the_full_text():
    # Setup
    text = '{"a": [' + ', '.join(['1'] * 2000)
    client = ScriptedClient([ScriptedReply(text=text, finish_reason='length')])

    # Run
    try:
        client.complete_json([{'role': 'user', 'content': 'Q'}], {'type': 'object'},
                             max_tokens=7)
    except LLMTruncatedOutputError as error:
        caught = error

    # Assert
    assert caught.last_text == text
    assert len(repr(caught)) < 500
    assert len(client.calls) == 1


def test_propose__max_tokens_grows_with_completions_and_anchors():
    # Setup
    anchors = [make_anchor(0, {'gender': 'Female'}), make_anchor(1, {'city': 'Nice'})]
    sizes = {}
    for k in (2, 4):
        for count in (1, 2):
            client = ScriptedClient(lambda messages, schema, params: schema_instance(
                schema, np.random.default_rng(0)))
            planner = AnchoredLLMPlanner(client, completions_per_anchor=k,
                                         reuse_completions=False, statistical_share=0.0)

            # Run
            planner.propose(anchors[:count], _shop_state())
            sizes[k, count] = client.calls[0]['params']['max_tokens']

    # Assert
    assert sizes[4, 1] > 1.7 * sizes[2, 1] - 40
    assert sizes[2, 2] > 1.7 * sizes[2, 1] - 40
    assert sizes[4, 2] > sizes[4, 1] and sizes[4, 2] > sizes[2, 2]
    assert sizes[2, 1] < 400


def test_propose__max_tokens_parameter_caps_every_call():
    # Setup
    client = ScriptedClient(lambda messages, schema, params: schema_instance(
        schema, np.random.default_rng(0)))
    planner = AnchoredLLMPlanner(client, max_tokens=64, statistical_share=0.0)

    # Run
    planner.propose([make_anchor(0, {'gender': 'Female'})], _shop_state())

    # Assert
    assert client.calls[0]['params']['max_tokens'] == 64


def test_propose__anchored_schema_bounds_items_and_weights():
    # Setup
    client = ScriptedClient(lambda messages, schema, params: schema_instance(
        schema, np.random.default_rng(0)))
    planner = AnchoredLLMPlanner(client, completions_per_anchor=3, statistical_share=0.0)

    # Run
    planner.propose([make_anchor(0, {'gender': 'Female'})], _shop_state())

    # Assert
    completions = client.calls[0]['schema']['properties']['anchor_1']
    assert completions['maxItems'] == 3
    assert completions['items']['properties']['weight'] == {'enum': list(range(1, 11))}


def test_propose__truncated_reply_keeps_complete_completions_and_retries_the_rest():
    # Setup
    state = _shop_state()
    anchors = [make_anchor(0, {'gender': 'Female'}), make_anchor(1, {'city': 'Nice'}),
               make_anchor(2, {'price': Range(10.0, 100.0)})]
    rng = np.random.default_rng(0)

    def respond(messages, schema, params):
        reply = schema_instance(schema, rng)
        if len(schema['properties']) == 3:
            return ScriptedReply(text=_cut(reply, 'anchor_1', 2), finish_reason='length')
        return reply

    client = ScriptedClient(respond)
    planner = AnchoredLLMPlanner(client, reuse_completions=False, statistical_share=0.0)

    # Run
    proposals = planner.propose(anchors, state)

    # Assert
    assert len(client.calls) == 2
    assert list(client.calls[1]['schema']['properties']) == ['anchor_1', 'anchor_2']
    assert _prompt_chars(client.calls[1]) < _prompt_chars(client.calls[0])
    assert client.calls[1]['params']['max_tokens'] < client.calls[0]['params']['max_tokens']
    first = [p for p in proposals if p.anchor_id == 0]
    assert 1 <= len(first) <= 2
    assert all(p.assignments['gender'] == 'Female' for p in first)
    assert {p.anchor_id for p in proposals} == {0, 1, 2}
    assert all(p.source == 'anchored' for p in proposals)
    assert state.usage.discarded.get('truncated_record') == 1
    assert planner.summary()['repairs']['salvaged_truncated_reply'] == 1
    assert planner.stats['truncation_retries'] == 1
    assert state.usage.llm_calls == 2


def test_propose__truncated_retry_is_not_retried_again():
    # Setup
    state = _shop_state()
    anchors = [make_anchor(0, {'gender': 'Female'}), make_anchor(1, {'city': 'Nice'})]
    rng = np.random.default_rng(0)

    def respond(messages, schema, params):
        reply = schema_instance(schema, rng)
        return ScriptedReply(text=_cut(reply, 'anchor_1', 1), finish_reason='length')

    client = ScriptedClient(respond)
    planner = AnchoredLLMPlanner(client, reuse_completions=False, statistical_share=0.0)

    # Run
    proposals = planner.propose(anchors, state)

    # Assert
    assert len(client.calls) == 2
    assert {p.anchor_id for p in proposals} == {0, 1}
    assert {p.source for p in proposals if p.anchor_id == 1} == {'anchored'}
    assert planner.summary()['fallback_anchors'] == 0


def test_propose__truncated_reply_with_nothing_complete_falls_back():
    # Setup
    state = _shop_state()
    client = ScriptedClient([ScriptedReply(text='{"anchor_1": [{"gen', finish_reason='length')])
    planner = AnchoredLLMPlanner(client, reuse_completions=False, statistical_share=0.0)

    # Run
    proposals = planner.propose([make_anchor(0, {'gender': 'Female'})], state)

    # Assert
    assert len(client.calls) == 1
    assert proposals and all(p.source == 'statistical' for p in proposals)
    assert state.usage.discarded == {'truncated_reply': 1}
    assert planner.summary()['fallback_anchors'] == 1


def test_propose__free_planner_salvages_a_truncated_reply():
    # Setup
    state = _shop_state(batch_rows=80)
    complete = {'reason': 'young women in Paris',
                'values': {'age': [18, 30], 'gender': 'Female', 'city': 'Paris',
                           'price': [10, 100]},
                'num': 30}
    text = ('{"n_proposals": 3, "proposals": [' + json.dumps(complete)
            + ', {"reason": "older men", "values": {"age": [45, 9')
    client = ScriptedClient([ScriptedReply(text=text, finish_reason='length')])
    planner = FreeLLMPlanner(client, num_proposals=3)

    # Run
    proposals = planner.propose([], state)

    # Assert
    assert len(client.calls) == 1
    assert len(proposals) == 1
    assert proposals[0].source == 'free'
    assert proposals[0].assignments['city'] == 'Paris'
    assert state.usage.discarded == {'truncated_record': 1}
    assert planner.summary()['repairs']['salvaged_truncated_reply'] == 1


def test_propose__free_planner_max_tokens_sized_from_the_proposals():
    # Setup
    sizes = {}
    for count in (1, 4):
        client = ScriptedClient(lambda messages, schema, params: schema_instance(
            schema, np.random.default_rng(0)))

        # Run
        FreeLLMPlanner(client, num_proposals=count).propose([], _shop_state())
        sizes[count] = client.calls[0]['params']['max_tokens']
        schema = client.calls[0]['schema']

        # Assert
        assert schema['properties']['proposals']['maxItems'] == count

    assert sizes[4] > 3 * sizes[1] - 60


def test_infer_dependencies__max_tokens_sized_from_the_schema():
    # Setup
    client = ScriptedClient([{'groups': [['age', 'gender']]}, {'groups': [['age', 'gender']]}])

    # Run
    infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', n_joints=1)
    infer_dependencies(client, shop_spec(), SHOP_METADATA, 'shop', n_joints=3)

    # Assert
    one, three = (call['params']['max_tokens'] for call in client.calls)
    assert one == estimate_reply_tokens(client.calls[0]['schema'])
    assert three > 2 * one - 40


def test_set_state__free_planner_counters_round_trip():
    # Setup
    client = ScriptedClient([ScriptedReply(text='{"proposals": [', finish_reason='length')])
    planner = FreeLLMPlanner(client, num_proposals=2)
    planner.propose([], _shop_state())
    saved = planner.get_state()
    restored = FreeLLMPlanner(client)

    # Run
    restored.set_state(json.loads(json.dumps(saved)))

    # Assert
    assert restored.summary() == planner.summary()
    assert restored.summary()['calls'] == 1
    assert restored.summary()['fallback_iterations'] == 1
