"""Tests of the e-commerce benchmark script (``evaluation/ecommerce.py``), loaded by path."""

import importlib.util
import json
import re
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


@pytest.fixture(scope='module')
def metadata(harness):
    return harness.load_metadata()


def _config(**overrides):
    config = {
        'quick': True, 'command': 'test', 'seeds': [0], 'num_rows': 300,
        'classifier': 'gradient_boosting', 'total_seconds': 1.0, 'versions': 'test',
        'label_shares': 'test',
    }
    config.update(overrides)
    return config


def _record(method, seed, value, **extra):
    record = {'method': method, 'seed': seed, 'method_seconds': 1.0,
              'marginal/user_age': value, 'fit_seconds': 0.5}
    record.update(extra)
    return record


@pytest.mark.slow
def test_run_experiment__plugged_method_and_markdown(harness):
    # Setup: a method that returns the reference rows shuffled, reporting LLM usage.
    def copy_method(reference, metadata, seed):
        info = {'llm_calls': 3, 'prompt_tokens': 100, 'completion_tokens': 20, 'tokens': 120}
        return reference.sample(frac=1.0, random_state=seed), info

    def absent_method(reference, metadata, seed):
        return None, {'status': 'not run (no endpoint)'}

    methods = {harness.REFERENCE_NAME: harness.reference_draw, 'Copy': copy_method,
               'Absent': absent_method}

    # Run
    records, samples = harness.run_experiment(methods, [0], metadata=None, num_rows=300,
                                              classifier='logistic', log=lambda message: None)
    markdown = harness.render_markdown(records, _config())

    # Assert
    copy = next(record for record in records if record['method'] == 'Copy')
    assert copy['marginal/user_age'] == 0.0
    assert copy['joint/category x age group x gender'] == 0.0
    assert copy['llm_calls'] == 3
    assert records[-1] == {'method': 'Absent', 'seed': 0, 'status': 'not run (no endpoint)'}
    assert set(samples) == {'Reference rows', harness.REFERENCE_NAME, 'Copy'}
    assert '| Copy | 0.000 |' in markdown
    assert '| Copy | 1 |' in markdown.split('## Cost')[1]
    assert '| 3 | 100 | 20 |' in markdown.split('## Cost')[1]
    assert '| Absent | not run (no endpoint) | – |' in markdown
    assert '*paper: LLMSynthor*' in markdown


def test_evaluate_synthetic__missing_column(harness):
    # Setup
    reference = sample_ecommerce(50, seed=0)

    # Run and Assert
    with pytest.raises(ValueError, match="The synthetic rows lack the columns \\['price'\\]"):
        harness._conform(reference.drop(columns=['price']))
    assert list(harness._conform(reference).columns) == list(COLUMNS)


def test_derive_reference_spec__marginals_and_joints(harness, metadata):
    # Setup
    reference = sample_ecommerce(300, seed=0)

    # Run
    marginals = harness.derive_reference_spec(reference, metadata, 'marginals')
    joints = harness.derive_reference_spec(reference, metadata, 'marginals + joints')

    # Assert
    marginal_columns = [statistic.columns for statistic in
                        marginals.tables['transactions'].statistics]
    joint_columns = [statistic.columns for statistic in joints.tables['transactions'].statistics]
    assert sorted(marginal_columns) == sorted((column,) for column in COLUMNS)
    assert ('product_category', 'user_age', 'gender') in joint_columns
    assert ('price', 'product_category') in joint_columns
    assert ('payment_method', 'location_tier') in joint_columns
    assert len(joint_columns) == 9
    assert [rule.name for rule in joints.tables['transactions'].rules] == [
        'adult buyer', 'price range']


def test_derive_reference_spec__unknown_kind(harness, metadata):
    # Setup
    reference = sample_ecommerce(50, seed=0)

    # Run and Assert
    message = "The 'spec_kind' must be one of ['marginals', 'marginals + joints']. Got 'joints'."
    with pytest.raises(ValueError, match=re.escape(message)):
        harness.derive_reference_spec(reference, metadata, 'joints')


def test_llmsynthor_method__statistical_reports_usage_and_convergence(harness, metadata):
    # Setup
    reference = sample_ecommerce(300, seed=0)
    method = harness.llmsynthor_method('marginals + joints')

    # Run
    synthetic, info = method(reference, metadata, 0)

    # Assert
    assert len(synthetic) == 300
    assert set(COLUMNS) <= set(synthetic.columns)
    assert info['llm_calls'] == 0 and info['tokens'] == 0
    history = info['convergence']['history']
    assert info['iterations'] == len(history) >= 2
    assert history[-1]['mean_tvd'] < history[0]['mean_tvd']
    assert info['convergence']['calibrated_mean_tvd'] < history[-1]['mean_tvd']
    assert info['convergence']['sample_mean_tvd'] < 0.05
    assert info['stopped_by']


def test_llmsynthor_method__endpoint_not_run_without_base_url(harness, metadata, monkeypatch):
    # Setup
    monkeypatch.delenv('LLMSYNTHOR_BASE_URL', raising=False)
    method = harness.LLMSYNTHOR_METHODS['endpoint-mj'][1]

    # Run
    synthetic, info = method(sample_ecommerce(50, seed=0), metadata, 0)

    # Assert
    assert synthetic is None
    assert info == {'status': 'not run (LLMSYNTHOR_BASE_URL not set)'}


def test_select_methods__keys_groups_and_names(harness):
    # Run
    selected = harness.select_methods(
        harness.METHODS, ['sdv', 'stat-mj', 'LLMSynthor statistical, marginals'],
        harness.METHOD_KEYS,
    )

    # Assert
    assert list(selected) == [
        harness.REFERENCE_NAME, 'GaussianCopula', 'CTGAN (150 epochs)', 'TVAE (300 epochs)',
        'CopulaGAN (150 epochs)', 'LLMSynthor statistical, marginals',
        'LLMSynthor statistical, marginals + joints',
    ]
    assert harness.select_methods(harness.METHODS, None, harness.METHOD_KEYS) == harness.METHODS


def test_select_methods__unknown(harness):
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("Unknown methods ['nope']. Known keys:")):
        harness.select_methods(harness.QUICK_METHODS, ['ctgan', 'nope'],
                               harness.QUICK_METHOD_KEYS)


def test_merge_records__replaces_run_pairs_keeps_others(harness):
    # Setup
    stored = [_record('B', 0, 1.0), _record('A', 0, 2.0), _record('A', 1, 3.0)]
    new = [_record('A', 1, 9.0), _record('C', 0, 4.0)]

    # Run
    merged = harness.merge_records(stored, new, order=['A', 'B'])

    # Assert
    assert [(r['method'], r['seed'], r['marginal/user_age']) for r in merged] == [
        ('A', 0, 2.0), ('A', 1, 9.0), ('B', 0, 1.0), ('C', 0, 4.0)]


def test_render_markdown__uneven_seeds_and_convergence(harness):
    # Setup
    convergence = {
        'history': [{'iteration': 0, 'pool_rows': 10, 'mean_tvd': 0.2, 'max_tvd': 0.3,
                     'llm_calls': 1},
                    {'iteration': 1, 'pool_rows': 20, 'mean_tvd': 0.1, 'max_tvd': 0.2,
                     'llm_calls': 2}],
        'calibrated_mean_tvd': 0.01, 'sample_mean_tvd': 0.02,
    }
    records = [_record('A', 0, 1.0), _record('A', 1, 3.0),
               _record('L', 0, 0.5, convergence=convergence, stopped_by='converged')]

    # Run
    markdown = harness.render_markdown(records, _config(seeds=[0, 1]))

    # Assert
    assert '| A | 2.000 ± 1.414 |' in markdown
    assert 'Methods run on other seeds (their cells average those seeds only): L: seeds [0].' \
        in markdown
    assert ('| L | 2 | converged | 0.2000 | 0.1000 | – | – | – | 0.1000 | 0.0100 | 0.0200 |'
            in markdown)


def test_marginal_histograms__shares_per_column(harness):
    # Setup
    frame = sample_ecommerce(200, seed=1)

    # Run
    histograms = harness.marginal_histograms(frame)

    # Assert
    assert list(histograms) == list(COLUMNS)
    assert len(histograms['price']) == harness.HISTOGRAM_BINS
    assert len(histograms['product_category']) == 4
    for shares in histograms.values():
        assert sum(shares) == pytest.approx(1.0, abs=1e-4)


def test_main__merge_replaces_and_render(harness, monkeypatch, tmp_path):
    # Setup: canned runs instead of the experiment.
    def fake_run(values):
        def run_experiment(methods, seeds, metadata, num_rows, classifier, log=print):
            records = [_record(name, seed, values[name]) for seed in seeds for name in methods]
            frame = sample_ecommerce(20, seed=0)
            return records, {'Reference rows': frame, **{name: frame for name in methods}}
        return run_experiment

    monkeypatch.setattr(harness, 'load_metadata', lambda: None)
    monkeypatch.setattr(harness, 'plot_marginals', lambda histograms, path: path.touch())
    names = harness.QUICK_METHOD_KEYS
    monkeypatch.setattr(harness, 'run_experiment',
                        fake_run({names['gaussiancopula']: 1.0, names['stat-m']: 2.0}))
    harness.main(['--quick', '--methods', 'gaussiancopula', 'stat-m', '--rows', '20',
                  '--out', str(tmp_path)])
    monkeypatch.setattr(harness, 'run_experiment', fake_run({names['stat-m']: 7.0}))

    # Run
    harness.main(['--quick', '--methods', 'stat-m', '--merge', '--rows', '20',
                  '--out', str(tmp_path)])
    stored = json.loads((tmp_path / 'ecommerce_quick.json').read_text())
    (tmp_path / 'ecommerce_quick.md').unlink()
    harness.main(['--quick', '--render', '--out', str(tmp_path)])

    # Assert
    values = {r['method']: r['marginal/user_age'] for r in stored['records']}
    assert values == {names['gaussiancopula']: 1.0, names['stat-m']: 7.0}
    assert len(stored['config']['runs']) == 2
    assert set(stored['histograms']) == {'Reference rows', names['gaussiancopula'],
                                         names['stat-m']}
    markdown = (tmp_path / 'ecommerce_quick.md').read_text()
    assert f"| {names['stat-m']} | 7.000 |" in markdown
    assert 'merged with `--merge`' in markdown


def test_main__merge_without_results(harness, tmp_path):
    # Run and Assert
    with pytest.raises(SystemExit, match='does not exist'):
        harness.main(['--quick', '--merge', '--out', str(tmp_path)])


def test_plot_convergence__only_with_convergence(harness, tmp_path):
    # Setup
    convergence = {'history': [{'iteration': 0, 'pool_rows': 10, 'mean_tvd': 0.2,
                                'max_tvd': 0.3, 'llm_calls': 0}],
                   'calibrated_mean_tvd': 0.0, 'sample_mean_tvd': 0.0}

    # Run
    written = harness.plot_convergence([_record('L', 0, 0.5, convergence=convergence)],
                                       tmp_path / 'c.png')
    skipped = harness.plot_convergence([_record('A', 0, 1.0)], tmp_path / 'd.png')

    # Assert
    assert written and (tmp_path / 'c.png').stat().st_size > 0
    assert not skipped and not (tmp_path / 'd.png').exists()
