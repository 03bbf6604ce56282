"""LLMSynthor through SDV's own API: entry points, the GaussianCopula swap, SDV utilities."""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

ROOT = Path(__file__).resolve().parents[2]


def _run_python(code):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_entry_points__import_from_sdv():
    """`from sdv.single_table import LLMSynthorSynthesizer` works, with no add-on warning."""
    # Run
    completed = _run_python("""
        import warnings
        warnings.simplefilter('error')
        from sdv.single_table import LLMSynthorSynthesizer
        from sdv.multi_table import LLMSynthorMultiTableSynthesizer
        print(LLMSynthorSynthesizer.__module__, LLMSynthorMultiTableSynthesizer.__module__)
    """)

    # Assert
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ['sdv_llmsynthor.synthesizers.single_table',
                                        'sdv_llmsynthor.synthesizers.multi_table']


def test_entry_points__package_imported_before_sdv():
    """Importing the package first still registers the synthesizers under sdv."""
    # Run
    completed = _run_python("""
        import sdv_llmsynthor.synthesizers
        from sdv.single_table import LLMSynthorSynthesizer
        from sdv.multi_table import LLMSynthorMultiTableSynthesizer
        print(LLMSynthorSynthesizer is sdv_llmsynthor.synthesizers.LLMSynthorSynthesizer)
    """)

    # Assert
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == 'True'
    assert 'Failed to load "sdv.single_table:LLMSynthorSynthesizer"' not in completed.stderr


def _tiny_shop(num_rows=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'gender': rng.choice(['Female', 'Male'], num_rows),
        'channel': rng.choice(['web', 'store', 'app'], num_rows),
        'visits': rng.integers(0, 3, num_rows),
    })


def test_sdv_utilities__load_synthesizer_and_evaluate_quality(tmp_path):
    """SDV's load_synthesizer and evaluate_quality work on an LLMSynthorSynthesizer."""
    # Setup
    from sdv.evaluation import evaluate_quality, run_diagnostic
    from sdv.single_table import LLMSynthorSynthesizer
    from sdv.utils import load_synthesizer

    data = _tiny_shop(200)
    metadata = Metadata.detect_from_dataframes({'shop': data})
    synthesizer = LLMSynthorSynthesizer(metadata, planner='statistical', verbose=False)
    synthesizer.fit({'shop': data})
    synthesizer.save(tmp_path / 'synth.pkl')

    # Run
    loaded = load_synthesizer(str(tmp_path / 'synth.pkl'))
    synthetic = loaded.sample(num_rows=200)
    quality = evaluate_quality({'shop': data}, synthetic, metadata, verbose=False)
    diagnostic = run_diagnostic({'shop': data}, synthetic, metadata, verbose=False)

    # Assert
    assert quality.get_score() > 0.8
    assert diagnostic.get_score() == 1.0


@pytest.mark.llm
@pytest.mark.skipif(importlib.util.find_spec('llama_cpp') is None,
                    reason='llama-cpp-python is not installed')
def test_gaussian_copula_swap__default_planner_with_embedded_model():
    """A GaussianCopula script runs unchanged with LLMSynthorSynthesizer (default: embedded LLM).

    The script below is the usual SDV one; only the class name differs. No ``llm`` is given and
    the test environment has no endpoint configured, so the anchored planner uses the embedded
    model.
    """
    # Setup
    from sdv.single_table import GaussianCopulaSynthesizer, LLMSynthorSynthesizer

    data = _tiny_shop()
    metadata = Metadata.detect_from_dataframes({'shop': data})
    outputs = {}

    # Run
    for synthesizer_class in (GaussianCopulaSynthesizer, LLMSynthorSynthesizer):
        synth = synthesizer_class(metadata)
        synth.fit({'shop': data})
        outputs[synthesizer_class.__name__] = synth.sample(num_rows=50)

    # Assert
    ours = outputs['LLMSynthorSynthesizer']
    reference = outputs['GaussianCopulaSynthesizer']
    assert list(ours) == list(reference) == ['shop']
    assert list(ours['shop'].columns) == list(reference['shop'].columns)
    assert len(ours['shop']) == 50
    metadata.validate_data(ours)
    usage = synth.get_usage()
    assert usage['llm_calls'] >= 1
    assert usage['model'] is not None
    assert 'anchored' in set(synth.get_library()['source'])
