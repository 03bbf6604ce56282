import json
import pickle
import re
import threading

import pytest

from sdv_llmsynthor.llm.usage import UsageTracker


def test_usage_tracker__counts_and_cost():
    # Setup
    tracker = UsageTracker(model='m', cost_per_1k_prompt=0.1, cost_per_1k_completion=0.4)

    # Run
    tracker.record_call(1000, 500)
    tracker.record_call(500, 0)
    tracker.record_cached()
    tracker.record_discard('invalid_json')
    tracker.record_discard('refusal', n=2)
    tracker.record_discard('invalid_json', n=0)
    tracker.record_retry()
    tracker.record_reask()

    # Assert
    usage = tracker.as_dict()
    assert usage == {
        'llm_calls': 2,
        'prompt_tokens': 1500,
        'completion_tokens': 500,
        'cached_calls': 1,
        'retries': 1,
        'reasks': 1,
        'discarded': {'invalid_json': 1, 'refusal': 2},
        'model': 'm',
        'cost': pytest.approx(0.15 + 0.2),
    }
    json.dumps(usage)


def test_usage_tracker__cost_is_none_without_prices():
    # Setup
    tracker = UsageTracker(model='m')
    tracker.record_call(10, 10)

    # Run
    cost = tracker.as_dict()['cost']

    # Assert
    assert cost is None


def test_record_discard__negative():
    # Run and Assert
    msg = "The 'n' parameter must be a non-negative integer. Got -1 instead."
    with pytest.raises(ValueError, match=re.escape(msg)):
        UsageTracker().record_discard('x', n=-1)


def test_usage_tracker__state_roundtrip():
    # Setup
    tracker = UsageTracker(model='m', cost_per_1k_prompt=1.0)
    tracker.record_call(7, 3)
    tracker.record_discard('unknown_category', 4)

    # Run
    state = json.loads(json.dumps(tracker.to_state()))
    restored = UsageTracker.from_state(state)

    # Assert
    assert restored.as_dict() == tracker.as_dict()
    restored.record_call(1, 1)
    assert restored.as_dict()['llm_calls'] == 2


def test_usage_tracker__unknown_state_version():
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape('Unknown usage state version 99')):
        UsageTracker.from_state({'version': 99})


def test_usage_tracker__pickles():
    # Setup
    tracker = UsageTracker(model='m')
    tracker.record_call(1, 2)

    # Run
    restored = pickle.loads(pickle.dumps(tracker))
    restored.record_call(1, 2)

    # Assert
    assert restored.as_dict()['completion_tokens'] == 4


def test_usage_tracker__thread_safe():
    # Setup
    tracker = UsageTracker()

    def work():
        for _ in range(2000):
            tracker.record_call(1, 2)
            tracker.record_discard('x')

    threads = [threading.Thread(target=work) for _ in range(4)]

    # Run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Assert
    usage = tracker.as_dict()
    assert (usage['llm_calls'], usage['prompt_tokens'], usage['completion_tokens']) == (
        8000, 8000, 16000)
    assert usage['discarded'] == {'x': 8000}
