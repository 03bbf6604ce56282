"""Tests of the speed-and-scale harness (``evaluation/speed.py``, imported from the repo)."""

import importlib
import sys
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def speed():
    sys.path.insert(0, str(REPOSITORY_ROOT))
    try:
        yield importlib.import_module('evaluation.speed')
    finally:
        sys.path.remove(str(REPOSITORY_ROOT))


def test_timed_median__stops_after_a_slow_first_run(speed):
    """A first run slower than ``repeat_under`` is not repeated."""
    # Setup
    calls = []

    # Run
    median, runs, result = speed.timed_median(lambda: calls.append(1) or len(calls),
                                              repeats=3, repeat_under=-1.0)

    # Assert
    assert len(runs) == 1
    assert median == runs[0]
    assert result == 1


def test_timed_median__repeats_cheap_runs(speed):
    """Cheap runs are repeated and the median of their times returned."""
    # Run
    median, runs, result = speed.timed_median(lambda: 'done', repeats=3, repeat_under=60.0)

    # Assert
    assert len(runs) == 3
    assert median == sorted(runs)[1]
    assert result == 'done'


def test_call_timer__times_each_send(speed):
    """Every call through ``_send`` is timed, and its reply passed through."""
    # Setup
    class Client:
        def _send(self, messages, schema, params):
            return {'echo': messages}

    client = Client()

    # Run
    timer = speed.CallTimer(client)
    first = client._send(['a'], {}, {})
    client._send(['b'], {}, {})

    # Assert
    assert first == {'echo': ['a']}
    assert len(timer.seconds) == 2
    assert all(seconds >= 0 for seconds in timer.seconds)


def test_per_thousand__scales_and_handles_zero_records(speed):
    """Values are scaled to 1,000 records; no records gives None."""
    # Assert
    assert speed.per_thousand(8, 2000) == pytest.approx(4.0)
    assert speed.per_thousand(8, 0) is None


def test_render__ratios_to_gaussian_copula(speed):
    """The table shows each method's ratio to GaussianCopula and the engine share of a call."""
    # Setup
    def result(key, fit, small, large, calls=0, tokens=0):
        return {
            'key': key, 'method': speed.METHODS[key], 'parameters': {}, 'token_budget': None,
            'fit_seconds': fit, 'fit_runs': [fit], 'fit_rows': 2000, 'fit_peak_mb': 10.0,
            'small_seconds': small, 'small_runs': [small], 'large_seconds': large,
            'large_runs': [large], 'large_peak_mb': 100.0, 'fit_llm_calls': calls,
            'fit_tokens': tokens, 'fit_prompt_tokens': tokens, 'fit_completion_tokens': 0,
            'calls_per_1k': calls / 2, 'tokens_per_1k': tokens / 2, 'sample_llm_calls': 0,
        }

    results = [result('GaussianCopula', 2.0, 0.5, 10.0),
               result('llmsynthor_statistical', 4.0, 1.0, 20.0),
               {'key': 'CTGAN', 'method': speed.METHODS['CTGAN'], 'error': 'boom'}]
    engine = {
        'by_pool': [{'pool_rows': 10_000, 'batch_records': 1000, 'engine_seconds': 0.04},
                    {'pool_rows': 100_000, 'batch_records': 1000, 'engine_seconds': 0.04}],
        'by_batch': [{'batch_records': 1000, 'engine_seconds': 0.04},
                     {'batch_records': 11_000, 'engine_seconds': 0.06}],
    }
    config = {
        'quick': True, 'command': 'cmd', 'suffix': '_quick', 'platform': 'p', 'cpus': 2,
        'python': '3', 'started': 'now', 'load_start': '1', 'load_end': '1',
        'total_seconds': 1.0, 'large_rows': 100_000, 'token_budget': 2500, 'epochs': 'e',
        'engine_iterations': 4, 'batch_pool': 30_000, 'llm_call_median': 4.0,
        'llm_call_count': 3, 'llm_call_min': 3.0, 'llm_call_max': 5.0,
    }

    # Run
    text = speed.render(results, engine, config)

    # Assert
    row = next(line for line in text.splitlines()
               if line.startswith('| LLMSynthor (statistical planner)'))
    assert '| 4.0 s | 2x | 1.0 s | 2x | 20.0 s | 2x |' in row
    assert '| SDV CTGAN | failed' in text
    assert '| 10,000 | 1,000 | 40 ms | 1.00% |' in text
    assert '2.0 ms per 1,000 further records' in text
