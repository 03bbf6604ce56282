"""The evaluation oracle: a localhost OpenAI-compatible server, reached through the real client.

Only the e-commerce Bayesian network is used (tests never read ``../shared/data``).
"""

import json

import numpy as np
import pandas as pd
import pytest

from evaluation import ecommerce
from evaluation.oracle_server import OracleAnswerer, OracleData, OracleServer, parse_cell
from sdv_llmsynthor.evaluation.ecommerce_bn import TABLE_NAME, sample_ecommerce
from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient
from sdv_llmsynthor.llm.prompts import (
    AnchorPrompt,
    ColumnPrompt,
    anchored_messages,
    anchored_schema,
    record_schema,
    weight_schema,
)
from sdv_llmsynthor.llm.retry import RetryPolicy
from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner
from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer


def _anchored_request(fixed_gender, completions=40):
    columns = [
        ColumnPrompt('gender', 'categorical', categories=['Female', 'Male']),
        ColumnPrompt('location_tier', 'categorical', categories=['Developed', 'Developing']),
        ColumnPrompt('user_age', 'numerical', labels={'[18, 40)': (18.0, 40.0),
                                                      '[40, 90]': (40.0, 90.0)},
                     minimum=18.0, maximum=90.0),
    ]
    schema = record_schema(columns, {'gender': fixed_gender}, 'bins',
                           {'weight': weight_schema()})
    anchor = AnchorPrompt(key='anchor_1', fixed={'gender': fixed_gender}, records=10,
                          schema=schema, completions=completions)
    messages = anchored_messages([anchor], columns, 'transactions')
    return messages, anchored_schema([anchor])


def test_oracle_answer__conditions_on_the_anchor_and_corrupts_on_request():
    """Female rows live in Developed tiers and are young: the oracle's completions say so."""
    # Setup
    pool = pd.DataFrame({
        'gender': ['Female'] * 50 + ['Male'] * 50,
        'location_tier': ['Developed'] * 50 + ['Developing'] * 50,
        'user_age': [25.0] * 50 + [60.0] * 50,
    })
    messages, schema = _anchored_request('Female')

    # Run
    _, honest = OracleAnswerer(OracleData({'transactions': pool}), 0.0).answer(messages, schema)
    corrupt_oracle = OracleAnswerer(OracleData({'transactions': pool}), 1.0)
    _, corrupted = corrupt_oracle.answer(messages, schema)

    # Assert
    records = honest['anchor_1']
    assert len(records) == 40
    assert {r['gender'] for r in records} == {'Female'}
    assert {r['location_tier'] for r in records} == {'Developed'}
    assert {r['user_age'] for r in records} == {'[18, 40)'}
    bad = corrupted['anchor_1']
    assert {r['gender'] for r in bad} == {'Female'}  # fixed values are never corrupted
    assert 'Developing' in {r['location_tier'] for r in bad}
    assert '[40, 90]' in {r['user_age'] for r in bad}
    assert corrupt_oracle.stats['fields_corrupted'] == corrupt_oracle.stats['fields'] > 0


def test_oracle_answer__reads_fixed_values_left_out_of_the_reply_from_the_anchor_lines():
    """The planner's default prompt: short labels, the anchor's columns only in the prompt."""
    # Setup
    pool = pd.DataFrame({
        'gender': ['Female'] * 50 + ['Male'] * 50,
        'location_tier': ['Developed'] * 50 + ['Developing'] * 50,
        'user_age': [25.0] * 50 + [60.0] * 50,
    })
    columns = [
        ColumnPrompt('gender', 'categorical', categories=['Female', 'Male']),
        ColumnPrompt('location_tier', 'categorical', categories=['Developed', 'Developing']),
        ColumnPrompt('user_age', 'numerical', labels={'18-40': (18.0, 40.0),
                                                      '40-90': (40.0, 90.0)},
                     minimum=18.0, maximum=90.0),
    ]
    schema = record_schema([c for c in columns if c.name != 'user_age'], None, 'bins',
                           {'weight': weight_schema()})
    anchor = AnchorPrompt(key='anchor_1', fixed={'user_age': '40-90'}, records=10,
                          schema=schema, completions=20)
    messages = anchored_messages([anchor], columns, 'transactions', echo_fixed=False)

    # Run
    _, reply = OracleAnswerer(OracleData({'transactions': pool}), 0.0).answer(
        messages, anchored_schema([anchor]))

    # Assert
    records = reply['anchor_1']
    assert len(records) == 20
    assert all(set(r) == {'gender', 'location_tier', 'weight'} for r in records)
    assert {r['gender'] for r in records} == {'Male'}
    assert {r['location_tier'] for r in records} == {'Developing'}


def test_parse_cell__keeps_categories_holding_an_ampersand():
    # Run
    cell = parse_cell('product_category = Food & Beverages & user_age in [18, 22.5)',
                      ['product_category', 'user_age'])

    # Assert
    assert cell == {'product_category': 'Food & Beverages', 'user_age': (18.0, 22.5, False)}


@pytest.mark.parametrize('planner', ['anchored', 'free'])
def test_oracle_server__short_synthesis_through_the_openai_client(planner):
    """json_schema is rejected as llama.cpp does, 503s are retried, the run completes."""
    # Setup
    metadata = ecommerce.load_metadata()
    reference = sample_ecommerce(500, seed=0)
    pool = sample_ecommerce(3000, seed=3000)
    spec = ecommerce.derive_reference_spec(reference, metadata, 'marginals')
    with OracleServer(OracleData({TABLE_NAME: pool}), corruption=0.0, seed=0,
                      reject_json_schema=True, fail_every=4) as server:
        client = OpenAICompatibleClient(
            model=f'oracle-test-{planner}', base_url=server.base_url, api_key='oracle',
            timeout=10, retry_policy=RetryPolicy(sleep=lambda seconds: None))
        chosen = (AnchoredLLMPlanner(client, statistical_share=0.0, reuse_completions=False)
                  if planner == 'anchored' else planner)
        synthesizer = LLMSynthorSynthesizer(metadata, spec=spec, planner=chosen, llm=client,
                                            num_rows=300, max_iterations=8, seed=0,
                                            verbose=False)

        # Run
        synthesizer.fit()
        synthetic = synthesizer.sample(num_rows=300)[TABLE_NAME]
        stats = server.stats

    # Assert
    usage = synthesizer.get_usage()
    assert len(synthetic) == 300
    assert stats['rejected_json_schema'] == 1
    assert stats['mode_json_schema'] == 1
    assert client.structured_output_mode == 'json_object'
    assert stats['transient_failures'] >= 1
    assert stats[f'answered_{planner}'] == usage['llm_calls'] >= 1
    assert stats['requests'] == (stats[f'answered_{planner}'] + stats['transient_failures']
                                 + stats['rejected_json_schema'])
    assert usage['discarded'] == {}
    assert stats.get('fields_corrupted', 0) == 0
    assert set(synthetic['product_category']) <= set(pool['product_category'])
    assert np.isfinite(synthetic['price']).all()
    json.dumps(stats)
