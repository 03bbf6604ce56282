"""Optional dependencies in tests: skip where they may be absent, never in CI."""

import os

import pytest


def skip_missing(reason):
    """Skip a test whose optional dependency is missing; in CI, fail instead.

    CI installs every extra (``make test`` installs ``.[local,dev]`` and the embedded model), so
    a missing dependency there is a broken install that a skip would hide.

    Args:
        reason (str):
            What is missing and how to install it.
    """
    if os.environ.get('CI', '').lower() == 'true':
        pytest.fail(f'CI must run this test, but {reason}')

    pytest.skip(reason)
