"""Transport retries: exponential backoff with full jitter, honouring ``Retry-After``.

Only transport failures are retried here (rate limits, timeouts, connection errors, 5xx).
Invalid output is a different matter, handled by a re-ask in ``structured.py``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RetryPolicy:
    """How transport errors are retried.

    The wait before retry ``k`` (0-based) is the server's ``Retry-After`` when it sends one
    (capped at ``max_retry_after``), otherwise a uniform draw in
    ``[0, min(max_delay, base_delay * 2**k)]`` ("full jitter").

    Args:
        max_retries (int):
            Retries after the first attempt. Defaults to 5.
        base_delay (float):
            Seconds; the jitter window of the first retry. Defaults to 0.5.
        max_delay (float):
            Seconds; the largest jitter window. Defaults to 30.
        max_retry_after (float):
            Seconds; the largest wait accepted from a ``Retry-After`` header. Defaults to 60.
        sleep (callable):
            The function that waits, ``time.sleep`` by default (tests inject their own).
        rng (random.Random):
            Source of the jitter.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], Any] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retry_index: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait before retry ``retry_index``.

        Args:
            retry_index (int):
                0 for the first retry.
            retry_after (float or None):
                The server's ``Retry-After`` in seconds, if any.

        Returns:
            float:
                The delay.
        """
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.max_retry_after))

        window = min(self.max_delay, self.base_delay * (2 ** retry_index))
        return self.rng.uniform(0.0, window)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get('sleep') is not time.sleep:
            # A test's sleep function may not pickle; a restored client sleeps for real.
            state['sleep'] = time.sleep

        return state


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Read the delay a server asks for, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be a number of seconds or an HTTP date.

    Args:
        headers (mapping or None):
            Response headers (case-insensitive mapping, or a plain dict).
        now (float or None):
            Current POSIX time, for HTTP dates. Defaults to ``time.time()``.

    Returns:
        float or None:
            Seconds to wait (never negative), or ``None`` if the headers do not say.
    """
    if not headers:
        return None

    lowered = {str(name).lower(): value for name, value in dict(headers).items()}
    milliseconds = lowered.get('retry-after-ms')
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass

    value = lowered.get('retry-after')
    if value is None:
        return None

    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None

    if moment is None:
        return None

    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)
