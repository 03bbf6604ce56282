import email.utils
import pickle
import random

import pytest

from sdv_llmsynthor.llm.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    ('headers', 'expected'),
    [
        (None, None),
        ({}, None),
        ({'Retry-After': '7'}, 7.0),
        ({'retry-after': '1.5'}, 1.5),
        ({'retry-after-ms': '250', 'retry-after': '9'}, 0.25),
        ({'Retry-After': '-3'}, 0.0),
        ({'Retry-After': 'soon'}, None),
    ],
)
def test_parse_retry_after__seconds(headers, expected):
    # Run
    result = parse_retry_after(headers)

    # Assert
    assert result == expected


def test_parse_retry_after__http_date():
    # Setup
    now = 1_700_000_000.0
    headers = {'Retry-After': email.utils.formatdate(now + 30, usegmt=True)}
    past = {'Retry-After': email.utils.formatdate(now - 30, usegmt=True)}

    # Run
    delay = parse_retry_after(headers, now=now)
    past_delay = parse_retry_after(past, now=now)

    # Assert
    assert delay == pytest.approx(30, abs=1)
    assert past_delay == 0.0


def test_backoff__full_jitter_bounds():
    # Setup
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(0))

    # Run
    delays = {index: [policy.backoff(index) for _ in range(200)] for index in range(6)}

    # Assert
    for index, values in delays.items():
        window = min(4.0, 0.5 * 2 ** index)
        assert all(0 <= value <= window for value in values)
        assert max(values) > window * 0.8


def test_backoff__retry_after_is_capped():
    # Setup
    policy = RetryPolicy(max_retry_after=10.0)

    # Run and Assert
    assert policy.backoff(0, retry_after=3.0) == 3.0
    assert policy.backoff(3, retry_after=3600.0) == 10.0


def test_retry_policy__pickles_without_test_sleep():
    # Setup
    policy = RetryPolicy(sleep=lambda seconds: None)

    # Run
    restored = pickle.loads(pickle.dumps(policy))

    # Assert
    assert restored.max_retries == policy.max_retries
