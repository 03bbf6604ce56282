"""The embedded model (SmolLM2-135M through llama.cpp) drives the synthesis loop end to end.

No mock: real inference, in-process. Small on purpose (2 cores): a 300-row e-commerce spec and
one iteration (one LLM call) per planner, whose batch of 360 records fills the pool. Skipped
only when llama-cpp-python is not installed.
"""

import importlib.util

import pytest

from sdv_llmsynthor.core.loop import SynthesisLoop
from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce
from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner
from sdv_llmsynthor.planners.free import FreeLLMPlanner
from sdv_llmsynthor.spec.model import MacroSpec

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(importlib.util.find_spec('llama_cpp') is None,
                       reason='llama-cpp-python is not installed (pip install llama-cpp-python)'),
]

NUM_ROWS = 300
COLUMNS = ['user_age', 'gender', 'location_tier', 'product_category', 'price', 'payment_method']
METADATA = {
    'tables': {'transactions': {'columns': {
        column: ({'sdtype': 'numerical', 'computer_representation': 'Float'}
                 if column in ('user_age', 'price') else {'sdtype': 'categorical'})
        for column in COLUMNS
    }}},
    'relationships': [],
}
JOINTS = [['product_category', 'user_age', 'gender'], ['price', 'product_category'],
          ['payment_method', 'location_tier']]


@pytest.fixture(scope='module')
def ecommerce_spec():
    return MacroSpec.from_data(sample_ecommerce(NUM_ROWS, 0), METADATA, joints=JOINTS,
                               context='Online shop transactions, one row per purchase.')


@pytest.fixture(scope='module')
def local_client():
    from sdv_llmsynthor.llm.local import LocalLlamaClient

    return LocalLlamaClient(seed=0)


def _check_output(result, spec):
    data = result.data
    assert len(data) == NUM_ROWS
    assert list(data.columns) == COLUMNS
    table = spec.tables['transactions']
    for column in ('gender', 'location_tier', 'product_category', 'payment_method'):
        assert set(data[column]) <= set(table.columns[column].categories)
    for column in ('user_age', 'price'):
        edges = table.columns[column].bins
        assert data[column].between(edges[0], edges[-1]).all()
    assert result.usage['llm_calls'] >= 1
    assert result.usage['prompt_tokens'] > 0


def test_anchored_planner__embedded_model_synthesises_the_spec(ecommerce_spec, local_client):
    # Setup
    planner = AnchoredLLMPlanner(local_client, completions_per_anchor=2, anchors_per_call=3)
    loop = SynthesisLoop(ecommerce_spec, METADATA, planner, num_rows=NUM_ROWS, max_iterations=1,
                         batch_rows=360, max_anchors=3, progress=False, calibration_seconds=5)

    # Run
    result = loop.run()

    # Assert
    _check_output(result, ecommerce_spec)
    assert 'anchored' in set(result.proposals['source'])
    assert planner.summary()['llm_anchors'] >= 1


def test_free_planner__embedded_model_synthesises_the_spec(ecommerce_spec, local_client):
    # Setup
    planner = FreeLLMPlanner(local_client, num_proposals=3)
    loop = SynthesisLoop(ecommerce_spec, METADATA, planner, num_rows=NUM_ROWS, max_iterations=1,
                         batch_rows=360, progress=False, calibration_seconds=5)

    # Run
    result = loop.run()

    # Assert
    _check_output(result, ecommerce_spec)
    assert planner.summary()['calls'] >= 1
