"""The ``--quick`` e-commerce experiment end to end (the CI run of issue 6's evaluation)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CATEGORICAL = ('gender', 'location_tier', 'product_category', 'payment_method')
REFERENCE = 'Reference (another BN draw)'
STATISTICAL = ('LLMSynthor statistical, marginals', 'LLMSynthor statistical, marginals + joints')
QUICK_METHODS = (REFERENCE, 'GaussianCopula', 'CTGAN (5 epochs)', *STATISTICAL)


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp('ecommerce_quick')
    completed = subprocess.run(
        [sys.executable, '-m', 'evaluation.ecommerce', '--quick', '--out', str(output)],
        cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((output / 'ecommerce_quick.json').read_text())
    records = {record['method']: record for record in results['records']}
    return output, results, records


@pytest.mark.slow
def test_ecommerce_quick__writes_every_file_and_method(quick_run):
    # Setup
    output, results, records = quick_run

    # Assert
    for name in ('ecommerce_quick.md', 'ecommerce_quick_marginals.png',
                 'ecommerce_quick_convergence.png'):
        assert (output / name).stat().st_size > 0
    markdown = (output / 'ecommerce_quick.md').read_text()
    assert set(QUICK_METHODS) <= set(records)
    anchored = [name for name in records if name.startswith('LLMSynthor anchored')]
    assert len(anchored) == 1
    for name in records:
        assert markdown.count(f'| {name} |') >= 5, name
    assert results['config']['seeds'] == [0]
    assert results['config']['runs'][0]['command'].startswith('python -m evaluation.ecommerce')


@pytest.mark.slow
def test_ecommerce_quick__statistical_below_the_noise_floor(quick_run):
    # Setup: the spec holds the reference rows' own histograms, so LLMSynthor matches them
    # closer than a second draw of the network does.
    _, _, records = quick_run
    reference = records[REFERENCE]

    # Assert
    for name in STATISTICAL:
        record = records[name]
        for column in CATEGORICAL:
            assert record[f'marginal/{column}'] < reference[f'marginal/{column}'], (name, column)
        for column in ('user_age', 'price'):
            assert record[f'marginal/{column}'] < reference[f'marginal/{column}'], (name, column)
        assert record['llm_calls'] == 0
        history = record['convergence']['history']
        assert history[-1]['mean_tvd'] < history[0]['mean_tvd']
        assert record['convergence']['sample_mean_tvd'] < 0.02

    joint = 'joint/price (6 quantile bins) x category'
    with_joints, marginals_only = records[STATISTICAL[1]], records[STATISTICAL[0]]
    assert with_joints[joint] < marginals_only[joint]
    assert with_joints[joint] < records['GaussianCopula'][joint]
    assert with_joints['gap/rows'] < marginals_only['gap/rows']


@pytest.mark.slow
def test_ecommerce_quick__embedded_model_reports_usage(quick_run):
    # Setup
    _, _, records = quick_run
    name = next(name for name in records if name.startswith('LLMSynthor anchored'))
    record = records[name]

    # Assert: either it ran (and spent at least one call within a small budget) or it says why.
    if 'status' in record:
        assert record['status'] == 'not run (llama-cpp-python not installed)'
        return
    assert record['llm_calls'] >= 1
    assert record['tokens'] == record['prompt_tokens'] + record['completion_tokens'] > 0
    assert 1 <= record['convergence']['history'][-1]['llm_calls'] <= record['llm_calls']
