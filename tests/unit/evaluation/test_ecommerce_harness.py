"""Tests of the e-commerce benchmark script (``evaluation/ecommerce.py``), loaded by path."""

import importlib.util
from pathlib import Path

import pytest

from sdv_llmsynthor.evaluation.ecommerce_bn import COLUMNS, sample_ecommerce

SCRIPT = Path(__file__).resolve().parents[3] / 'evaluation' / 'ecommerce.py'


@pytest.fixture(scope='module')
def harness():
    spec = importlib.util.spec_from_file_location('ecommerce_harness_under_test', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_run_experiment__plugged_method_and_markdown(harness):
    # Setup: a method that returns the reference rows shuffled, reporting LLM usage.
    def copy_method(reference, metadata, seed):
        return reference.sample(frac=1.0, random_state=seed), {'llm_calls': 3, 'tokens': 120}

    methods = {harness.REFERENCE_NAME: harness.reference_draw, 'Copy': copy_method}

    # Run
    records, samples = harness.run_experiment(methods, [0], metadata=None, num_rows=300,
                                              classifier='logistic', log=lambda message: None)
    markdown = harness.render_markdown(records, {
        'quick': True, 'command': 'test', 'seeds': [0], 'num_rows': 300,
        'classifier': 'gradient_boosting', 'total_seconds': 1.0, 'versions': 'test',
        'label_shares': 'test',
    })

    # Assert
    copy = next(record for record in records if record['method'] == 'Copy')
    assert copy['marginal/user_age'] == 0.0
    assert copy['joint/category x age group x gender'] == 0.0
    assert copy['llm_calls'] == 3
    assert set(samples) == {'Reference rows', harness.REFERENCE_NAME, 'Copy'}
    assert '| Copy | 0.000 |' in markdown
    assert '| 3 | 120 |' in markdown.split('## Cost')[1]
    assert '*paper: LLMSynthor*' in markdown


def test_evaluate_synthetic__missing_column(harness):
    # Setup
    reference = sample_ecommerce(50, seed=0)

    # Run and Assert
    with pytest.raises(ValueError, match="The synthetic rows lack the columns \\['price'\\]"):
        harness._conform(reference.drop(columns=['price']))
    assert list(harness._conform(reference).columns) == list(COLUMNS)
