"""SYNTHIA: an LLM generator and an LLM discriminator, grounded by a statistical analyzer.

The method of papers/004 (Algorithm 1), for users who have real rows:

1. ``fit`` computes the metadata encodings ``M`` by code (column types, ranges, moments,
   cardinalities and category frequencies, class balance, a row pattern) and draws a stratified
   subsample ``X_sub`` of ``num_conditioning_rows`` real rows.
2. The generator LLM writes a batch of rows under a JSON schema built from the metadata (enums
   for categorical columns, integer/number types for numeric ones) from the prompt
   ``P = U(M, X_sub, F)``.
3. Every row is validated against the metadata; invalid rows are discarded and counted by
   reason. The :class:`~sdv_llmsynthor.analysis.StatisticalAnalyzer` compares the valid rows
   with the real ones (KS, chi-squared, KL/JS, coverage, correlations, copies of real rows).
4. The discriminator LLM reads those diagnostics with small real and synthetic samples and
   answers ``{"feedback": ..., "decision": "Real" | "Synthetic"}`` (two schema fields; the
   feedback must be a sentence of at least 10 characters). The feedback ``F_t`` of this round
   replaces the previous one in the next generator prompt, ``P = U(M, X_sub, F_t)``. Feedback
   that is only decision words or shorter than three words (a small model sometimes writes
   ``"Real"`` there), or a reply that could not be parsed, is replaced by one sentence from the
   analyzer naming the worst columns; the history keeps both (``feedback_source``).
5. The loop stops when the discriminator says ``Real``, after ``patience`` rounds without
   improvement of the analyzer's score, at ``max_rounds`` or at the ``max_fit_tokens`` budget.
   Every round's diagnostics, feedback and decision are kept (:meth:`get_history`).

``sample(num_rows)`` generates with the final prompt (that of the round the discriminator
judged Real, else of the best-scoring round) in parallel batches, validates every row, excludes
exact and near copies of real rows and returns exactly ``num_rows`` rows.

Differences from the paper, on purpose:

- the metadata encodings are computed by code (exact, and free) instead of asked from the LLM;
- the discriminator answers analysis and decision in one structured call
  (``{"feedback", "decision"}``) instead of a free-text analysis followed by a decision;
- by default the generator prompt also carries the analyzer's findings on the four worst
  columns next to the discriminator's feedback (``feedback_with_diagnostics``), which keeps
  the loop informative when the discriminator is a small model. Set it to False for the
  paper's ``U(M, X_sub, F_t)`` exactly;
- with a grammar-constrained local model, numeric values are written as digit strings whose
  pattern only matches the fitted range (``numeric_format``), because such models follow
  patterns and enums but not ``minimum``/``maximum``.

What a fitted (and saved) synthesizer holds: the metadata encodings, the conditioning rows
(real rows, shown to the LLM in every prompt, as the method requires), the run history, the
LLM client objects (without API keys; an endpoint client reads its key from the environment
again, and :meth:`SynthiaSynthesizer.set_llm` swaps the model), and the near-copy index (every
real row in a compact encoded form: numeric values and category codes), which ``sample`` needs
to exclude copies of real rows. Set ``exclude_near_copies=False`` to keep no index (and no such
check).
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sdv import version as sdv_version
from sdv.errors import SamplingError, SynthesizerInputError
from sdv.single_table.base import BaseSingleTableSynthesizer

from sdv_llmsynthor.analysis.analyzer import (
    MISSING,
    StatisticalAnalyzer,
    category_key,
    get_column_kinds,
    get_datetime_formats,
    numeric_values,
)
from sdv_llmsynthor.errors import LLMOutputError, SynthiaWarning

__all__ = ['SynthiaSynthesizer']

DECISIONS = ('Real', 'Synthetic')
_MAX_CATEGORIES_SHOWN = 12
_PATTERN_CATEGORIES_SHOWN = 3
_MIN_FEEDBACK_CHARS = 10
_GENERATOR_FINDINGS_COLUMNS = 4
_DEFAULT_DATETIME_FORMAT = '%Y-%m-%d %H:%M:%S'

_GENERATOR_SYSTEM = (
    'You are the generator in a synthetic tabular data workflow. You write new, realistic rows '
    'of the table described by the user, as JSON. Every value must respect its column type, '
    'range and categories. Together, your rows must follow the real distributions and '
    'relationships between columns. Never copy an example row.'
)

_DISCRIMINATOR_SYSTEM = (
    'You are the discriminator in a synthetic data generation workflow. Evaluate the quality of '
    'the synthetic data against the real data using the samples and the statistical analysis. '
    '1. Examine the "Guaranteed Real Data Sample" to understand the true distributions, ranges '
    'and category frequencies. 2. Examine the "Undetermined Data Sample" for errors, '
    'unrealistic values or distributional drift. 3. Use the "Statistics": a low KS statistic '
    'and a high chi-squared p-value mean similar distributions; a high JS divergence means a '
    'mismatch; check class balance, absent rare categories, implausible outliers and copied '
    'rows. 4. Answer with a JSON object. If the synthetic data is indistinguishable from real '
    'data, set "decision" to "Real". Otherwise set "decision" to "Synthetic". In both cases '
    '"feedback" is one or two sentences for the generator: the columns that deviate most and '
    'how to fix them.'
)


@dataclass
class _ColumnSpec:
    """What the synthesizer learned about one column (its metadata encoding)."""

    name: str
    kind: str
    nullable: bool = False
    missing_share: float = 0.0
    integer: bool = False
    decimals: int | None = None
    low: float | None = None
    high: float | None = None
    stats: dict[str, float] = field(default_factory=dict)
    categories: list[Any] = field(default_factory=list)
    frequencies: list[float] = field(default_factory=list)
    datetime_format: str | None = None
    dtype: str = 'object'

    def json_schema(self, numeric_format: str = 'number') -> dict[str, Any]:
        """JSON Schema of one value.

        Numeric bounds are never put in the schema: a reply is validated as a whole, so one
        value out of range would lose the whole batch; rows are checked one by one by code
        instead. With ``numeric_format='pattern'`` a numeric value is a string of digits whose
        regular expression only matches numbers of the fitted range (grammar-constrained
        models enforce patterns, not ``minimum``/``maximum``).
        """
        if self.kind == 'categorical':
            return {'enum': list(self.categories) + ([None] if self.nullable else [])}
        if self.kind == 'numerical' and numeric_format == 'pattern' and self.low is not None:
            value = {'type': 'string', 'pattern': self.number_pattern()}
            return {'anyOf': [value, {'type': 'null'}]} if self.nullable else value
        if self.kind == 'numerical':
            base = 'integer' if self.integer else 'number'
        else:  # datetime and other columns are strings
            base = 'string'
        return {'type': [base, 'null'] if self.nullable else base}

    def number_pattern(self) -> str:
        """A regular expression of the numbers in ``[low, high]`` (integer part exact)."""
        if self.integer:
            return '^' + _integer_range_regex(int(self.low), int(self.high)) + '$'
        low = -math.ceil(-self.low) if self.low < 0 else math.floor(self.low)
        integer_part = _integer_range_regex(int(low), int(math.floor(self.high)))
        decimals = max(1, self.decimals or 1)
        return f'^{integer_part}(\\.[0-9]{{1,{decimals}}})?$'


def _same_length_regex(low: str, high: str) -> list[str]:
    """Alternatives matching the digit strings from ``low`` to ``high`` (same length)."""
    if low == high:
        return [low]
    if len(low) == 1:
        return [f'[{low}-{high}]']
    if low[0] == high[0]:
        return [low[0] + rest for rest in _same_length_regex(low[1:], high[1:])]
    width = len(low) - 1
    parts, first, last = [], int(low[0]), int(high[0])
    if low[1:] != '0' * width:
        parts += [low[0] + rest for rest in _same_length_regex(low[1:], '9' * width)]
        first += 1
    tail = []
    if high[1:] != '9' * width:
        tail = [high[0] + rest for rest in _same_length_regex('0' * width, high[1:])]
        last -= 1
    if first <= last:
        digit = str(first) if first == last else f'[{first}-{last}]'
        parts.append(digit + f'[0-9]{{{width}}}')
    return parts + tail


def _natural_range_regex(low: int, high: int) -> list[str]:
    """Alternatives matching the non-negative integers in ``[low, high]`` (no leading zeros)."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        stop = min(high, 10 ** digits - 1)
        if start <= stop:
            parts += _same_length_regex(str(start), str(stop))
    return parts


def _integer_range_regex(low: int, high: int) -> str:
    """A regular expression (a group) matching exactly the integers in ``[low, high]``."""
    parts = []
    if low < 0:
        negative = _natural_range_regex(max(1, -min(high, -1)), -low)
        parts += ['-' + part for part in negative]
    if high >= 0:
        parts += _natural_range_regex(max(low, 0), high)
    return '(' + '|'.join(parts) + ')'


def _format_number(value: float | None, integer: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    if integer or float(value).is_integer():
        return f'{value:.0f}'
    return f'{value:.4g}'


def _format_share(share: float) -> str:
    return f'{share:.1%}' if share < 0.01 else f'{share:.0%}'


def _decimals(values: np.ndarray) -> int:
    for digits in range(7):
        if np.allclose(values, np.round(values, digits), rtol=0, atol=1e-9):
            return digits
    return 6


def _json_value(value: Any) -> Any:
    """A canonical category as a JSON-compatible value."""
    key = category_key(value)
    return None if key == MISSING else key


_USAGE_KEYS = ('llm_calls', 'prompt_tokens', 'completion_tokens', 'cached_calls')


def _empty_usage() -> dict[str, int]:
    return dict.fromkeys(_USAGE_KEYS, 0)


def _usage_delta(after: Counter, before: Counter) -> dict[str, int]:
    return {key: int(after[key] - before[key]) for key in _USAGE_KEYS}


def _to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator='\n').strip()


_NO_VALID_ROWS_FEEDBACK = (
    'None of the rows were valid; follow the column types, ranges and categories exactly.'
)


def _is_usable_feedback(feedback: str) -> bool:
    """Whether discriminator feedback says something beyond a decision word.

    A small model sometimes writes the decision (``"Real"``) or a fragment into the feedback
    field; such feedback gives the generator nothing to act on.
    """
    words = [word.strip('.,;:!"\'') for word in str(feedback).split()]
    words = [word for word in words if word]
    if len(words) < 3:
        return False
    return {word.lower() for word in words} - {d.lower() for d in DECISIONS} - {'data'} != set()


def _analyzer_feedback(report) -> str:
    """One feedback sentence from the analyzer's worst columns (used when the discriminator's
    feedback is unusable)."""
    worst = sorted(report.columns, key=lambda entry: entry['score'])[:3]
    if not worst:
        return _NO_VALID_ROWS_FEEDBACK
    names = ', '.join(entry['column'] for entry in worst)
    return (
        f'The columns {names} deviate most from the real data: match their real ranges, '
        'category shares and spread.'
    )


class SynthiaSynthesizer(BaseSingleTableSynthesizer):
    """SYNTHIA: LLM generator and LLM discriminator guided by a statistical analyzer.

    Args:
        metadata (sdv.metadata.Metadata):
            SDV metadata of one table.
        llm (LLMClient, str, dict or None):
            The generator model: an ``LLMClient``, ``'local'`` (the embedded
            SmolLM2-135M-Instruct), ``'openai'``/``'openai:<model>'``, a dict of
            ``OpenAICompatibleClient`` arguments, or None (an endpoint configured in the
            environment, else the embedded model). See ``sdv_llmsynthor.llm.resolve_llm``.
        discriminator_llm (LLMClient, str, dict or None):
            The discriminator model, same forms. None uses the generator's client. With the
            embedded model, a second ``LocalLlamaClient`` here keeps the generator's prompt in
            its own llama.cpp context between rounds (only the changed end of the prompt is
            evaluated again), at the memory cost of a second copy of the model.
        num_conditioning_rows (int):
            Size ``k`` of the stratified real subsample shown in the generator prompt.
            Defaults to 20.
        batch_size (int):
            Rows the generator writes per LLM call. Defaults to 10.
        max_rounds (int):
            Most generator/discriminator rounds during ``fit``. Defaults to 5.
        patience (int):
            Stop after this many rounds without improvement of the analyzer's score.
            Defaults to 2.
        rows_per_round (int or None):
            Rows generated per round for the analyzer. Defaults to ``2 * batch_size``.
        min_improvement (float):
            Smallest score gain that counts as an improvement. Defaults to 0.001.
        max_fit_tokens (int or None):
            Token budget (prompt + completion, both models) of ``fit``; the loop stops after
            the round that exceeds it. None for no budget.
        temperature (float):
            Sampling temperature of the generator. Defaults to 0.8.
        target_column (str or None):
            The label column: its class balance goes into the prompt and it stratifies the
            conditioning subsample. None stratifies on the categorical column with the fewest
            categories (at least 2), if any.
        exclude_near_copies (bool):
            Exclude exact and near copies of real rows from ``sample`` (and keep the index
            needed for that). Defaults to True.
        near_copy_quantile (float):
            Near-copy threshold, as a quantile of real-to-real nearest-neighbour distances
            (see ``NearCopyIndex``). Defaults to 0.01.
        feedback_with_diagnostics (bool):
            Also give the generator the analyzer's compact findings, not only the
            discriminator's feedback. Defaults to True.
        discriminator_sample_rows (int):
            Real and synthetic rows shown to the discriminator. Defaults to 5.
        max_concurrency (int or None):
            Parallel LLM calls when sampling. None uses the client's setting.
        max_tokens_per_row (int or None):
            Completion-token allowance per generated row. None estimates it from the columns.
        row_format (str):
            How the generator writes rows: ``'object'`` (one JSON object per row, keyed by
            column name), ``'array'`` (one JSON array of values in column order, about half
            the tokens) or ``'auto'`` (``'array'`` for the embedded llama.cpp model, whose
            grammar enforces the column order and whose speed is set by the tokens it writes;
            ``'object'`` otherwise). Defaults to ``'auto'``.
        numeric_format (str):
            How numeric values are constrained in the generator's JSON schema: ``'number'``
            (JSON integer/number types; ranges checked by code afterwards), ``'pattern'``
            (strings of digits whose regular expression only matches the fitted range, for
            grammar-constrained local models that ignore ``minimum``/``maximum``) or
            ``'auto'`` (``'pattern'`` for the embedded llama.cpp model, ``'number'``
            otherwise). Defaults to ``'auto'``.
        max_feedback_chars (int):
            Longest discriminator feedback (a ``maxLength`` in its JSON schema, so a small
            model cannot ramble past its token allowance). Defaults to 200.
        seed (int):
            Seed of the subsampling and base seed of the LLM calls. Defaults to 0.
        enforce_min_max_values (bool):
            Discard generated rows with numeric or datetime values outside the fitted range
            (never clipped). Defaults to True.
        enforce_rounding (bool):
            Round decimal columns to the decimals seen in the data. Defaults to True.
    """

    def __init__(
        self,
        metadata,
        llm=None,
        discriminator_llm=None,
        num_conditioning_rows=20,
        batch_size=10,
        max_rounds=5,
        patience=2,
        rows_per_round=None,
        min_improvement=0.001,
        max_fit_tokens=None,
        temperature=0.8,
        target_column=None,
        exclude_near_copies=True,
        near_copy_quantile=0.01,
        feedback_with_diagnostics=True,
        discriminator_sample_rows=5,
        max_concurrency=None,
        max_tokens_per_row=None,
        row_format='auto',
        numeric_format='auto',
        max_feedback_chars=200,
        seed=0,
        enforce_min_max_values=True,
        enforce_rounding=True,
    ):
        super().__init__(
            metadata,
            enforce_min_max_values=enforce_min_max_values,
            enforce_rounding=enforce_rounding,
        )
        # Secrets stay out of get_parameters() and out of pickles (see __getstate__).
        self._secrets = {}
        self.llm = self._without_secret('llm', llm)
        self.discriminator_llm = self._without_secret('discriminator_llm', discriminator_llm)
        self.num_conditioning_rows = num_conditioning_rows
        self.batch_size = batch_size
        self.max_rounds = max_rounds
        self.patience = patience
        self.rows_per_round = rows_per_round
        self.min_improvement = min_improvement
        self.max_fit_tokens = max_fit_tokens
        self.temperature = temperature
        self.target_column = target_column
        self.exclude_near_copies = exclude_near_copies
        self.near_copy_quantile = near_copy_quantile
        self.feedback_with_diagnostics = feedback_with_diagnostics
        self.discriminator_sample_rows = discriminator_sample_rows
        self.max_concurrency = max_concurrency
        self.max_tokens_per_row = max_tokens_per_row
        self.row_format = row_format
        self.numeric_format = numeric_format
        self.max_feedback_chars = max_feedback_chars
        self.seed = seed

        self._generator_client = None
        self._discriminator_client = None
        self._numeric_format = 'number'
        self._row_format = 'object'
        self._specs = []
        self._conditioning_rows = None
        self._history = []
        self._fit_summary = {}
        self._final_context = None
        self._privacy_index = None
        self._acceptance_rate = None
        self._sample_counter = 0
        self._sampled_ids = 0
        self._sampling_report = {}
        self._phase_usage = {'fit': _empty_usage(), 'sample': _empty_usage()}

    # ----------------------------------------------------------------------------------------
    # Parameters, secrets, pickling
    # ----------------------------------------------------------------------------------------
    def _without_secret(self, name, value):
        if isinstance(value, dict) and value.get('api_key') is not None:
            self._secrets[name] = value['api_key']
            return {key: item for key, item in value.items() if key != 'api_key'}
        return value

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_secrets'] = {}
        return state

    def __setstate__(self, state):
        # Files saved before 'row_format' could be 'auto' hold no resolved row format.
        if '_row_format' not in state:
            row_format = state.get('row_format')
            state['_row_format'] = row_format if row_format in ('object', 'array') else 'object'
        self.__dict__.update(state)

    def set_llm(self, llm, discriminator_llm=None):
        """Replace the generator (and discriminator) model, e.g. after ``load``.

        Args:
            llm (LLMClient, str, dict or None):
                The generator model (see the ``llm`` parameter).
            discriminator_llm (LLMClient, str, dict or None):
                The discriminator model. None uses the generator's client.
        """
        self._secrets = {}
        self.llm = self._without_secret('llm', llm)
        self.discriminator_llm = self._without_secret('discriminator_llm', discriminator_llm)
        self._generator_client = None
        self._discriminator_client = None

    def _resolve_clients(self):
        from sdv_llmsynthor.llm.resolve import resolve_llm

        def resolve(name):
            value = getattr(self, name)
            if isinstance(value, dict) and name in self._secrets:
                value = {**value, 'api_key': self._secrets[name]}
            return resolve_llm(value)

        if self._generator_client is None:
            self._generator_client = resolve('llm')
        if self._discriminator_client is None:
            self._discriminator_client = (
                self._generator_client if self.discriminator_llm is None
                else resolve('discriminator_llm')
            )

    def _uses_embedded_model(self):
        from sdv_llmsynthor.llm.local import LocalLlamaClient

        return isinstance(self._generator_client, LocalLlamaClient)

    def _resolve_row_format(self):
        if self.row_format != 'auto':
            return self.row_format
        return 'array' if self._uses_embedded_model() else 'object'

    def _resolve_numeric_format(self):
        if self.numeric_format != 'auto':
            return self.numeric_format
        return 'pattern' if self._uses_embedded_model() else 'number'

    def _check_parameters(self, columns):
        problems = []

        def positive_int(name, allow_none=False):
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                problems.append(
                    f"The '{name}' parameter must be a positive integer. Got {value!r} instead."
                )

        for name in ('num_conditioning_rows', 'batch_size', 'max_rounds', 'patience',
                     'discriminator_sample_rows', 'max_feedback_chars'):
            positive_int(name)
        for name in ('rows_per_round', 'max_fit_tokens', 'max_concurrency', 'max_tokens_per_row'):
            positive_int(name, allow_none=True)
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            problems.append(
                "The 'temperature' parameter must be a non-negative number. "
                f'Got {self.temperature!r} instead.'
            )
        if not isinstance(self.near_copy_quantile, (int, float)) or not (
            0 <= self.near_copy_quantile <= 1
        ):
            problems.append(
                "The 'near_copy_quantile' parameter must be a number between 0 and 1. "
                f'Got {self.near_copy_quantile!r} instead.'
            )
        if not isinstance(self.min_improvement, (int, float)) or self.min_improvement < 0:
            problems.append(
                "The 'min_improvement' parameter must be a non-negative number. "
                f'Got {self.min_improvement!r} instead.'
            )
        if self.numeric_format not in ('auto', 'number', 'pattern'):
            problems.append(
                "The 'numeric_format' parameter must be 'auto', 'number' or 'pattern'. "
                f'Got {self.numeric_format!r} instead.'
            )
        if self.row_format not in ('auto', 'object', 'array'):
            problems.append(
                "The 'row_format' parameter must be 'auto', 'object' or 'array'. "
                f'Got {self.row_format!r} instead.'
            )
        if self.target_column is not None and self.target_column not in columns:
            problems.append(
                f"The 'target_column' parameter must be a column of the table. Got "
                f'{self.target_column!r} instead; the columns are {list(columns)}.'
            )
        if problems:
            raise SynthesizerInputError('\n'.join(problems))

    # ----------------------------------------------------------------------------------------
    # Metadata encodings
    # ----------------------------------------------------------------------------------------
    def _build_specs(self, data):
        kinds = get_column_kinds(data, self.metadata, self._table_name)
        formats = get_datetime_formats(self.metadata, self._table_name)
        table_metadata = self.metadata.to_dict()['tables'][self._table_name]['columns']
        specs = []
        for column in data.columns:
            kind = kinds.get(column, 'other')
            series = data[column]
            missing = series.isna()
            spec = _ColumnSpec(
                name=column, kind=kind, nullable=bool(missing.any()),
                missing_share=float(missing.mean()), dtype=str(series.dtype),
            )
            if kind == 'numerical':
                values = numeric_values(series)
                present = values[~np.isnan(values)]
                representation = str(table_metadata.get(column, {}).get('computer_representation',
                                                                        ''))
                whole = present.size == 0 or bool(np.all(np.floor(present) == present))
                spec.integer = representation.lower().startswith(('int', 'uint')) or whole
                spec.decimals = 0 if spec.integer else _decimals(present)
                if present.size:
                    spec.low, spec.high = float(present.min()), float(present.max())
                    spec.stats = {
                        'mean': float(present.mean()), 'std': float(present.std()),
                        'median': float(np.median(present)),
                        'q05': float(np.quantile(present, 0.05)),
                        'q95': float(np.quantile(present, 0.95)),
                    }
            elif kind == 'datetime':
                spec.datetime_format = formats.get(column)
                values = numeric_values(series, 'datetime', spec.datetime_format)
                present = values[~np.isnan(values)]
                if present.size:
                    spec.low, spec.high = float(present.min()), float(present.max())
                    spec.stats = {'median': float(np.median(present))}
                if spec.datetime_format is None:
                    has_time = present.size and bool(np.any(present % 86400 != 0))
                    spec.datetime_format = _DEFAULT_DATETIME_FORMAT if has_time else '%Y-%m-%d'
            elif kind == 'categorical':
                counts = series.dropna().map(_json_value).value_counts()
                spec.categories = counts.index.tolist()
                spec.frequencies = (counts / max(len(series), 1)).tolist()
            specs.append(spec)
        return specs

    def _strata_column(self):
        if self.target_column is not None:
            return self.target_column
        candidates = [s for s in self._specs if s.kind == 'categorical' and len(s.categories) > 1]
        if not candidates:
            return None
        return min(candidates, key=lambda s: len(s.categories)).name

    def _stratified_sample(self, data, size, rng):
        """Proportional allocation over the strata, at least one row per stratum when possible."""
        size = min(size, len(data))
        column = self._strata_column()
        if column is None:
            return data.iloc[np.sort(rng.choice(len(data), size=size, replace=False))]
        keys = data[column].map(category_key)
        groups = {key: np.flatnonzero((keys == key).to_numpy()) for key in pd.unique(keys)}
        shares = {key: len(rows) / len(data) for key, rows in groups.items()}
        allocation = {key: int(math.floor(share * size)) for key, share in shares.items()}
        if size >= len(groups):
            for key in allocation:
                allocation[key] = max(1, allocation[key])
        remainders = {key: share * size - math.floor(share * size) for key, share in shares.items()}
        order = sorted(groups, key=lambda key: -remainders[key])
        while sum(allocation.values()) < size:
            for key in order:
                if sum(allocation.values()) >= size:
                    break
                if allocation[key] < len(groups[key]):
                    allocation[key] += 1
        while sum(allocation.values()) > size:
            largest = max(allocation, key=allocation.get)
            allocation[largest] -= 1
        chosen = [
            rng.choice(groups[key], size=min(count, len(groups[key])), replace=False)
            for key, count in allocation.items() if count > 0
        ]
        rows = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
        return data.iloc[rows]

    def _row_pattern(self):
        parts = []
        for spec in self._generated_specs():
            if spec.kind == 'numerical':
                if spec.integer and spec.low is not None:
                    digits = sorted({len(str(abs(int(v)))) for v in (spec.low, spec.high)})
                    sign = '-?' if spec.low < 0 else ''
                    part = sign + (rf'\d{{{digits[0]}}}' if len(digits) == 1
                                   else rf'\d{{{digits[0]},{digits[-1]}}}')
                else:
                    part = r'-?\d+(\.\d+)?'
            elif spec.kind == 'categorical':
                shown = [str(c) for c in spec.categories[:_PATTERN_CATEGORIES_SHOWN]]
                more = len(spec.categories) - len(shown)
                part = '(' + '|'.join(shown) + (f'|...{more} more' if more > 0 else '') + ')'
            elif spec.kind == 'datetime':
                part = f'<{spec.datetime_format}>'
            else:
                part = '.+'
            parts.append(part + ('?' if spec.nullable else ''))
        return '^' + ','.join(parts) + '$'

    def _describe_columns(self):
        lines = []
        for spec in self._generated_specs():
            missing = f'; missing in {spec.missing_share:.0%} of rows' if spec.nullable else ''
            if spec.kind == 'numerical':
                kind = 'integer' if spec.integer else f'decimal number ({spec.decimals} decimals)'
                if spec.low is None:
                    lines.append(f'- {spec.name}: {kind}{missing}')
                    continue
                low, high, median, q05, q95 = (
                    _format_number(value, spec.integer) for value in (
                        spec.low, spec.high, spec.stats['median'], spec.stats['q05'],
                        spec.stats['q95'],
                    )
                )
                lines.append(
                    f'- {spec.name}: {kind} from {low} to {high}; mean '
                    f"{_format_number(spec.stats['mean'])}, median {median}, "
                    f'90% of rows between {q05} and {q95}{missing}'
                )
            elif spec.kind == 'categorical':
                shown = [
                    f'{value} {_format_share(share)}' for value, share in
                    zip(spec.categories[:_MAX_CATEGORIES_SHOWN], spec.frequencies)
                ]
                more = len(spec.categories) - len(shown)
                rest = f' and {more} rarer values' if more > 0 else ''
                lines.append(
                    f'- {spec.name}: category, {len(spec.categories)} values: '
                    f"{', '.join(shown)}{rest}{missing}"
                )
            elif spec.kind == 'datetime':
                if spec.low is None:
                    lines.append(f"- {spec.name}: date/time written as '{spec.datetime_format}'")
                    continue
                low = pd.Timestamp(spec.low, unit='s').strftime(spec.datetime_format)
                high = pd.Timestamp(spec.high, unit='s').strftime(spec.datetime_format)
                lines.append(
                    f"- {spec.name}: date/time written as '{spec.datetime_format}', from {low} to "
                    f'{high}{missing}'
                )
            else:
                lines.append(f'- {spec.name}: free text{missing}')
        return '\n'.join(lines)

    def _class_balance(self):
        column = self._strata_column()
        spec = next((s for s in self._specs if s.name == column), None)
        if spec is None:
            return ''
        shares = ', '.join(f'{v} {p:.0%}' for v, p in zip(spec.categories, spec.frequencies))
        return f'Class balance of {column}: {shares}.'

    def get_metadata_encoding(self):
        """Return the metadata encodings computed at fit (the paper's ``M``) as a dict.

        Returns:
            dict:
                ``columns`` (per column: kind, type, range, statistics, categories and their
                frequencies, missing share), ``class_balance`` and ``row_pattern``.
        """
        self._validate_fit_before_sample()
        return {
            'columns': [copy.deepcopy(spec.__dict__) for spec in self._specs],
            'class_balance': self._class_balance(),
            'row_pattern': self._row_pattern(),
        }

    def _generated_specs(self):
        return [spec for spec in self._specs if spec.kind != 'id']

    # ----------------------------------------------------------------------------------------
    # Prompts and schemas
    # ----------------------------------------------------------------------------------------
    def _batch_schema(self, num_rows):
        specs = self._generated_specs()
        if self._row_format == 'array':
            row = {
                'type': 'array',
                'prefixItems': [spec.json_schema(self._numeric_format) for spec in specs],
                'items': False,
                'minItems': len(specs),
                'maxItems': len(specs),
            }
        else:
            row = {
                'type': 'object',
                'properties': {
                    spec.name: spec.json_schema(self._numeric_format) for spec in specs
                },
                'required': [spec.name for spec in specs],
                'additionalProperties': False,
            }
        return {
            'type': 'object',
            'properties': {
                'rows': {'type': 'array', 'items': row, 'minItems': num_rows,
                         'maxItems': num_rows},
            },
            'required': ['rows'],
            'additionalProperties': False,
        }

    def _discriminator_schema(self):
        return {
            'type': 'object',
            'properties': {
                'feedback': {
                    'type': 'string',
                    'minLength': min(_MIN_FEEDBACK_CHARS, int(self.max_feedback_chars)),
                    'maxLength': int(self.max_feedback_chars),
                },
                'decision': {'enum': list(DECISIONS)},
            },
            'required': ['feedback', 'decision'],
            'additionalProperties': False,
        }

    def _tokens_per_row(self):
        """An upper estimate of the completion tokens of one row, from the fitted metadata.

        Digits count as one token each (as in the tokenizers of small models), words as one
        token per two characters, and every value pays for its quotes and separator.
        """
        if self.max_tokens_per_row is not None:
            return int(self.max_tokens_per_row)
        total = 4
        for spec in self._generated_specs():
            if spec.kind == 'numerical':
                largest = max(abs(spec.low or 0), abs(spec.high or 0))
                value = len(str(int(largest))) + (1 if (spec.low or 0) < 0 else 0)
                if not spec.integer:
                    value += 1 + max(1, spec.decimals or 1)
            elif spec.kind == 'categorical':
                value = math.ceil(max([len(str(c)) for c in spec.categories] + [4]) / 2)
            elif spec.kind == 'datetime':
                value = len(pd.Timestamp(0).strftime(spec.datetime_format or
                                                     _DEFAULT_DATETIME_FORMAT))
            else:
                value = 24
            key = 0 if self._row_format == 'array' else 3 + math.ceil(len(spec.name) / 2)
            total += 3 + key + value
        return math.ceil(1.25 * total)

    def _max_tokens(self, num_rows):
        """The completion-token allowance of a call asking for ``num_rows`` rows."""
        return num_rows * self._tokens_per_row() + 16

    def _generator_messages(self, context, num_rows):
        """The prompt ``U(M, X_sub, F)``: metadata, examples, then feedback and the request."""
        specs = self._generated_specs()
        examples = self._conditioning_rows[[s.name for s in specs]]
        parts = [
            f"Table '{self._table_name}': {self._num_real_rows} real rows, {len(specs)} "
            'columns.',
            'Columns (type, range, distribution):',
            self._describe_columns(),
        ]
        balance = self._class_balance()
        if balance:
            parts.append(balance)
        parts += [
            f'Row pattern (CSV order): {self._row_pattern()}',
            'Example real rows, for format and realism only (do not copy them):',
            _to_csv(examples),
        ]
        feedback = (context or {}).get('feedback') or []
        if feedback:
            parts.append('Feedback from the discriminator on your previous rows (apply it):')
            parts += [f'- {item}' for item in feedback]
        findings = (context or {}).get('findings')
        if findings and self.feedback_with_diagnostics:
            parts.append('Statistical findings on your previous rows:')
            parts.append(findings)
        keys = ', '.join(s.name for s in specs)
        if self._row_format == 'array':
            shape = f'each row an array of {len(specs)} values in this column order: {keys}'
        else:
            shape = f'each row an object with the keys {keys}'
        numbers = (
            ' Write numbers as strings of digits, e.g. "42".'
            if self._numeric_format == 'pattern' else ''
        )
        parts.append(
            f'Write {num_rows} new rows as a JSON object {{"rows": [...]}}, {shape}.{numbers} '
            'Make the rows differ from each other the way real rows do.'
        )
        return [
            {'role': 'system', 'content': _GENERATOR_SYSTEM},
            {'role': 'user', 'content': '\n'.join(parts)},
        ]

    def _discriminator_messages(self, real_sample, synthetic_sample, statistics):
        user = '\n'.join([
            'Guaranteed Real Data Sample:',
            _to_csv(real_sample),
            '',
            'Undetermined Data Sample:',
            _to_csv(synthetic_sample) if len(synthetic_sample) else '(no valid rows)',
            '',
            'Statistics:',
            statistics,
            '',
            'Return {"feedback": "...", "decision": "Real" or "Synthetic"}.',
        ])
        return [
            {'role': 'system', 'content': _DISCRIMINATOR_SYSTEM},
            {'role': 'user', 'content': user},
        ]

    # ----------------------------------------------------------------------------------------
    # Validation of generated rows
    # ----------------------------------------------------------------------------------------
    def _check_value(self, spec, value):
        """Return ``(reason, value)``: reason None when valid, value converted."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (None, None) if spec.nullable else ('null_not_allowed', None)
        if spec.kind == 'categorical':
            key = category_key(value)
            if key not in self._category_sets[spec.name]:
                return 'unknown_category', None
            return None, key
        if spec.kind == 'numerical':
            if isinstance(value, str) and self._numeric_format == 'pattern':
                try:
                    value = float(value)
                except ValueError:
                    return 'wrong_type', None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return 'wrong_type', None
            if not math.isfinite(value):
                return 'wrong_type', None
            if spec.integer and not float(value).is_integer():
                return 'not_integer', None
            if spec.integer:
                value = int(value)
            elif self.enforce_rounding and spec.decimals is not None:
                value = round(float(value), spec.decimals)
            if self.enforce_min_max_values and spec.low is not None and not (
                spec.low <= value <= spec.high
            ):
                return 'out_of_range', None
            return None, value
        if spec.kind == 'datetime':
            if not isinstance(value, str):
                return 'wrong_type', None
            try:
                parsed = pd.to_datetime(value, format=spec.datetime_format)
            except (ValueError, TypeError):
                return 'bad_datetime', None
            seconds = parsed.value / 1e9
            if self.enforce_min_max_values and spec.low is not None and not (
                spec.low <= seconds <= spec.high
            ):
                return 'out_of_range', None
            return None, value
        if not isinstance(value, str) or not value.strip():
            return 'wrong_type', None
        return None, value

    def _validate_rows(self, rows):
        """Split raw rows into a frame of valid rows and counts of invalid ones by reason."""
        specs = self._generated_specs()
        valid, reasons, details = [], Counter(), Counter()
        names = [spec.name for spec in specs]
        for row in rows:
            if isinstance(row, list) and len(row) == len(names):
                row = dict(zip(names, row))
            if not isinstance(row, dict):
                reasons['malformed_row'] += 1
                details['malformed_row:*'] += 1
                continue
            clean, reason, where = {}, None, None
            for spec in specs:
                if spec.name not in row:
                    reason, where = 'missing_column', spec.name
                    break
                reason, value = self._check_value(spec, row[spec.name])
                if reason is not None:
                    where = spec.name
                    break
                clean[spec.name] = value
            if reason is None and set(row) - {s.name for s in specs}:
                reason, where = 'unknown_column', sorted(set(row) - {s.name for s in specs})[0]
            if reason is None:
                valid.append(clean)
            else:
                reasons[reason] += 1
                details[f'{reason}:{where}'] += 1
        frame = pd.DataFrame(valid, columns=[s.name for s in specs])
        return frame, reasons, details

    def _typed_frame(self, frame):
        """Give generated columns the dtypes and representations of the fitted data."""
        frame = frame.copy()
        for spec in self._generated_specs():
            column = frame[spec.name]
            if spec.kind == 'categorical':
                lookup = self._category_lookup[spec.name]
                frame[spec.name] = column.map(
                    lambda value, lookup=lookup: (
                        np.nan if value is None else lookup.get(value, value)
                    )
                )
                try:
                    if not spec.nullable or frame[spec.name].notna().all():
                        frame[spec.name] = frame[spec.name].astype(spec.dtype)
                except (TypeError, ValueError):
                    pass
            elif spec.kind == 'numerical':
                values = pd.to_numeric(column, errors='coerce')
                try:
                    frame[spec.name] = values.astype(spec.dtype)
                except (TypeError, ValueError):
                    frame[spec.name] = values
            elif spec.kind == 'datetime':
                if spec.dtype.startswith('datetime64'):
                    frame[spec.name] = pd.to_datetime(column, format=spec.datetime_format)
                else:
                    frame[spec.name] = column.astype(object).where(column.notna(), np.nan)
        return frame

    def _add_id_columns(self, frame):
        columns = []
        for spec in self._specs:
            if spec.kind == 'id':
                ids = np.arange(self._sampled_ids, self._sampled_ids + len(frame))
                if spec.dtype.startswith(('int', 'uint', 'Int', 'UInt')):
                    frame[spec.name] = ids
                else:
                    frame[spec.name] = [str(i) for i in ids]
            columns.append(spec.name)
        self._sampled_ids += len(frame)
        return frame[columns]

    # ----------------------------------------------------------------------------------------
    # Generation
    # ----------------------------------------------------------------------------------------
    def _tracker_totals(self):
        clients = [self._generator_client]
        if self._discriminator_client is not self._generator_client:
            clients.append(self._discriminator_client)
        totals = Counter()
        for client in clients:
            if client is None:
                continue
            usage = client.usage
            totals['llm_calls'] += usage.llm_calls
            totals['prompt_tokens'] += usage.prompt_tokens
            totals['completion_tokens'] += usage.completion_tokens
            totals['cached_calls'] += usage.cached_calls
        return totals

    def _generate_batches(self, messages, num_batches, seed_base, num_rows=None):
        """Run ``num_batches`` calls of ``num_rows`` rows in parallel; return rows and failures.

        ``num_rows`` defaults to ``batch_size``; ``messages`` must ask for that many rows.
        """
        num_rows = self.batch_size if num_rows is None else num_rows
        schema = self._batch_schema(num_rows)
        max_tokens = self._max_tokens(num_rows)
        requests = [
            (messages, schema, {
                'temperature': self.temperature, 'max_tokens': max_tokens,
                'seed': int(seed_base + index),
            })
            for index in range(num_batches)
        ]
        results = self._generator_client.map_complete_json(
            requests, max_concurrency=self.max_concurrency
        )
        rows, failures = [], Counter()
        for result in results:
            if isinstance(result, LLMOutputError):
                failures[result.discard_reason] += 1
                self._generator_client.usage.record_discard(result.discard_reason)
            elif isinstance(result, Exception):
                raise result
            else:
                rows.extend(result.data.get('rows', []))
        return rows, failures

    def _exclude_copies(self, frame):
        if self._privacy_index is None or not len(frame):
            return frame, Counter()
        exact, near, _ = self._privacy_index.flag(frame)
        reasons = Counter({'exact_copy': int(exact.sum()), 'near_copy': int((near & ~exact).sum())})
        return frame.loc[~near].reset_index(drop=True), +reasons

    # ----------------------------------------------------------------------------------------
    # Fit: Algorithm 1
    # ----------------------------------------------------------------------------------------
    def fit(self, data):
        """Learn the metadata encodings and run SYNTHIA's generator/discriminator loop.

        Args:
            data (dict[str, pandas.DataFrame] or pandas.DataFrame):
                ``{table_name: rows}`` as in SDV 2.x, or the rows themselves.

        Raises:
            SynthesizerInputError:
                If a parameter is invalid or constraints were added (not supported).
            sdv.errors.InvalidDataError:
                If the data does not match the metadata.
        """
        if isinstance(data, pd.DataFrame):
            data = {self._table_name: data}
        if not isinstance(data, dict) or len(data) != 1:
            raise SynthesizerInputError(
                'The `data` parameter must be a pandas DataFrame or a dictionary containing '
                'exactly one table name mapped to a pandas DataFrame.'
            )
        table_name, table = next(iter(data.items()))
        self._validate_table_name(table_name)
        if self.get_constraints():
            raise SynthesizerInputError(
                'SynthiaSynthesizer does not support SDV constraints: remove them, or filter '
                'the sampled rows with the constraints yourself.'
            )
        self._check_parameters(table.columns)
        if len(table) == 0:
            raise SynthesizerInputError('The `data` parameter has no rows: SYNTHIA needs rows.')
        self.validate(data)

        self._fitted = False
        self._resolve_clients()
        self._numeric_format = self._resolve_numeric_format()
        self._row_format = self._resolve_row_format()
        start = time.perf_counter()
        before = self._tracker_totals()
        rng = np.random.default_rng(self.seed)
        self._num_real_rows = len(table)
        self._specs = self._build_specs(table)
        self._category_sets = {
            s.name: set(s.categories) for s in self._specs if s.kind == 'categorical'
        }
        self._category_lookup = {}
        for spec in self._specs:
            if spec.kind == 'categorical':
                lookup = {}
                for value in table[spec.name].dropna().unique():
                    lookup.setdefault(_json_value(value), value.item() if hasattr(value, 'item')
                                      else value)
                self._category_lookup[spec.name] = lookup
        self._conditioning_rows = self._stratified_sample(
            table, self.num_conditioning_rows, rng
        ).reset_index(drop=True)

        analyzer = StatisticalAnalyzer(
            self.metadata, self._table_name, check_privacy=True,
            near_copy_quantile=self.near_copy_quantile, seed=self.seed,
        )
        profile = analyzer.profile(table)
        self._privacy_index = profile.near_copy_index if self.exclude_near_copies else None
        self._history = []
        self._sample_counter = 0
        self._sampled_ids = 0
        self._sampling_report = {}
        self._phase_usage = {'fit': _empty_usage(), 'sample': _empty_usage()}
        self._run_loop(table, analyzer, profile, rng, before)

        self._phase_usage['fit'] = _usage_delta(self._tracker_totals(), before)
        self._fit_summary['seconds'] = time.perf_counter() - start
        self._fitted = True
        self._fitted_date = pd.Timestamp.today().strftime('%Y-%m-%d')
        self._fitted_sdv_version = getattr(sdv_version, 'community', None)
        self._fitted_sdv_enterprise_version = getattr(sdv_version, 'enterprise', None)

    def _run_loop(self, table, analyzer, profile, rng, before):
        rows_per_round = self.rows_per_round or 2 * self.batch_size
        num_batches = math.ceil(rows_per_round / self.batch_size)
        context = {'feedback': [], 'findings': None}
        best_score, best_context, best_round = -math.inf, copy.deepcopy(context), 0
        rounds_without_improvement = 0
        generated_total = valid_total = 0
        stop_reason = 'max_rounds'
        real_rows = table[[s.name for s in self._generated_specs()]]
        for round_number in range(1, self.max_rounds + 1):
            round_start = time.perf_counter()
            round_before = self._tracker_totals()
            messages = self._generator_messages(context, self.batch_size)
            raw_rows, failures = self._generate_batches(
                messages, num_batches, seed_base=self.seed + 1000 * round_number
            )
            frame, invalid, details = self._validate_rows(raw_rows)
            generated_total += len(raw_rows)
            report = analyzer.analyze(profile, frame)
            copies = report.privacy.get('num_near_copies', 0) if self.exclude_near_copies else 0
            valid_total += len(frame) - copies
            statistics = report.summary_text(max_lines=30)
            if invalid:
                statistics += '\nInvalid rows discarded: ' + ', '.join(
                    f'{key.replace(":", " in ")} {count}' for key, count in details.most_common(6)
                )
            feedback, decision, discriminator_error = self._discriminate(
                real_rows, frame, statistics, rng, round_number
            )
            feedback_source = 'discriminator'
            if discriminator_error is not None or not _is_usable_feedback(feedback):
                feedback_source = 'analyzer'
                discriminator_feedback = feedback
                feedback = _analyzer_feedback(report)
            improved = report.score > best_score + self.min_improvement
            if improved:
                best_score, best_context, best_round = report.score, copy.deepcopy(context), \
                    round_number
                rounds_without_improvement = 0
            else:
                rounds_without_improvement += 1

            round_usage = self._tracker_totals() - round_before
            self._history.append({
                'round': round_number,
                'num_generated': len(raw_rows),
                'num_valid': len(frame),
                'invalid_rows': dict(invalid),
                'invalid_details': dict(details),
                'failed_batches': dict(failures),
                'num_exact_copies': report.privacy.get('num_exact_copies', 0),
                'num_near_copies': report.privacy.get('num_near_copies', 0),
                'score': report.score,
                'improved': improved,
                'diagnostics': report.to_dict(),
                'summary': statistics,
                'feedback': feedback,
                'feedback_source': feedback_source,
                'discriminator_feedback': (
                    feedback if feedback_source == 'discriminator' else discriminator_feedback
                ),
                'decision': decision,
                'discriminator_error': discriminator_error,
                'prompt_feedback': list(context['feedback']),
                'llm_calls': round_usage['llm_calls'],
                'tokens': round_usage['prompt_tokens'] + round_usage['completion_tokens'],
                'seconds': time.perf_counter() - round_start,
            })

            spent = self._tracker_totals() - before
            if decision == 'Real':
                stop_reason = 'discriminator_real'
                best_context, best_round = copy.deepcopy(context), round_number
                break
            if rounds_without_improvement >= self.patience:
                stop_reason = 'no_improvement'
                break
            if self.max_fit_tokens is not None and (
                spent['prompt_tokens'] + spent['completion_tokens'] >= self.max_fit_tokens
            ):
                stop_reason = 'token_budget'
                break
            # P <- U(M, X_sub, F_t): the feedback of this round (and the analyzer's findings on
            # its worst columns) replaces that of the previous round in the next prompt.
            context = {
                'feedback': [feedback],
                'findings': report.worst_columns_text(_GENERATOR_FINDINGS_COLUMNS),
            }

        self._final_context = best_context
        self._acceptance_rate = valid_total / generated_total if generated_total else 0.0
        self._fit_summary = {
            'rounds': len(self._history),
            'stop_reason': stop_reason,
            'final_round': best_round,
            'best_score': best_score if best_round else None,
            'acceptance_rate': self._acceptance_rate,
        }
        if valid_total == 0:
            warnings.warn(
                'SYNTHIA produced no valid row during fit (see get_history() for the reasons); '
                'sampling will likely fail. Try a stronger model (llm=...) or a smaller '
                'batch_size.',
                SynthiaWarning,
                stacklevel=3,
            )

    def _discriminate(self, real_rows, frame, statistics, rng, round_number):
        """Ask the discriminator; return ``(feedback, decision, error)``."""
        if not len(frame):
            return _NO_VALID_ROWS_FEEDBACK, 'Synthetic', None
        size = self.discriminator_sample_rows
        real_sample = real_rows.iloc[
            np.sort(rng.choice(len(real_rows), size=min(size, len(real_rows)), replace=False))
        ]
        messages = self._discriminator_messages(real_sample, frame.head(size), statistics)
        try:
            response = self._discriminator_client.complete_json(
                messages, self._discriminator_schema(), temperature=0.2,
                max_tokens=int(self.max_feedback_chars) + 40,
                seed=int(self.seed + 1000 * round_number + 999),
            )
        except LLMOutputError as error:
            self._discriminator_client.usage.record_discard(error.discard_reason)
            return '', 'Synthetic', f'{type(error).__name__}: {error}'[:300]
        feedback = str(response.data.get('feedback', '')).strip()[: int(self.max_feedback_chars)]
        return feedback, response.data.get('decision', 'Synthetic'), None

    # ----------------------------------------------------------------------------------------
    # Sample
    # ----------------------------------------------------------------------------------------
    def reset_sampling(self):
        """Reset the sampling seeds to the state right after fitting."""
        self._sample_counter = 0
        self._sampled_ids = 0

    def sample(self, num_rows, main_table_name=None, max_tries_per_batch=10, batch_size=None,
               output_folder_path=None):
        """Generate exactly ``num_rows`` valid rows with the final prompt.

        Rows are generated in parallel LLM calls of ``batch_size`` rows, validated against the
        metadata (invalid rows are discarded and counted by reason, never clipped), and exact
        and near copies of real rows are excluded. Calls continue until enough rows are valid,
        up to ``max_tries_per_batch`` times the number of calls ``num_rows`` needs at
        ``batch_size`` rows per call.

        Args:
            num_rows (int):
                Rows to return.
            main_table_name (str or None):
                The table name (checked against the metadata).
            max_tries_per_batch (int):
                The cap on LLM calls, as a multiple of ``ceil(num_rows / batch_size)``.
                Defaults to 10.
            batch_size (int or None):
                Rows per LLM call. Defaults to the synthesizer's ``batch_size``.
            output_folder_path (str or None):
                A folder where ``<table_name>.csv`` is also written.

        Returns:
            dict[str, pandas.DataFrame]:
                ``{table_name: rows}``.

        Raises:
            SamplingError:
                If the synthesizer is not fitted, or too few valid rows came back within the
                cap on LLM calls.
        """
        table_name = self._table_name if main_table_name is None else main_table_name
        self._validate_table_name(table_name)
        self._validate_fit_before_sample()
        if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or \
                num_rows < 0:
            raise SynthesizerInputError(
                f"The 'num_rows' parameter must be a non-negative integer. Got {num_rows!r} "
                'instead.'
            )
        self._resolve_clients()
        original_batch_size = self.batch_size
        if batch_size is not None:
            self.batch_size = int(batch_size)
        try:
            frame = self._sample_rows(int(num_rows), max_tries_per_batch)
        finally:
            self.batch_size = original_batch_size

        frame = self._add_id_columns(self._typed_frame(frame))
        if output_folder_path is not None:
            os.makedirs(output_folder_path, exist_ok=True)
            frame.to_csv(os.path.join(output_folder_path, f'{table_name}.csv'), index=False)
        return {table_name: frame}

    def _sample_rows(self, num_rows, max_tries_per_batch):
        columns = [s.name for s in self._generated_specs()]
        start = time.perf_counter()
        before = self._tracker_totals()
        report = {
            'num_rows': num_rows, 'llm_batches': 0, 'generated_rows': 0, 'valid_rows': 0,
            'accepted_rows': 0, 'discarded': Counter(), 'invalid_details': Counter(),
            'failed_batches': Counter(),
        }
        accepted = [pd.DataFrame(columns=columns)]
        num_accepted = 0
        needed_batches = max(1, math.ceil(num_rows / self.batch_size))
        max_batches = max(1, int(max_tries_per_batch)) * needed_batches
        acceptance = min(1.0, max(self._acceptance_rate or 0.0, 0.1))
        concurrency = self.max_concurrency or self._generator_client.max_concurrency or 1
        try:
            while num_accepted < num_rows:
                remaining_batches = max_batches - report['llm_batches']
                if remaining_batches <= 0:
                    raise SamplingError(self._sampling_failure(num_rows, num_accepted, report))
                rows_needed = math.ceil((num_rows - num_accepted) / acceptance)
                # Waves of at most twice the concurrency: overshoot stays small when the
                # acceptance estimate is pessimistic. The calls of a wave share the rows still
                # needed, so the last wave asks for fewer rows than batch_size (the request is
                # at the end of the prompt: a cached prompt is only evaluated again there).
                needed = math.ceil(rows_needed / self.batch_size)
                num_batches = max(1, min(needed, remaining_batches, 2 * concurrency))
                call_rows = max(1, min(self.batch_size, math.ceil(rows_needed / num_batches)))
                messages = self._generator_messages(self._final_context, call_rows)
                seed_base = self.seed + 1_000_000 + self._sample_counter
                self._sample_counter += num_batches
                raw_rows, failures = self._generate_batches(
                    messages, num_batches, seed_base, call_rows
                )
                report['llm_batches'] += num_batches
                report['failed_batches'].update(failures)
                report['generated_rows'] += len(raw_rows)
                frame, invalid, details = self._validate_rows(raw_rows)
                report['valid_rows'] += len(frame)
                report['discarded'].update(invalid)
                report['invalid_details'].update(details)
                frame, copies = self._exclude_copies(frame)
                report['discarded'].update(copies)
                for reason, count in (invalid + copies).items():
                    self._generator_client.usage.record_discard(reason, count)
                if len(frame):
                    accepted.append(frame)
                    num_accepted += len(frame)
                if report['generated_rows']:
                    acceptance = min(1.0, max(num_accepted / report['generated_rows'], 0.05))
        finally:
            spent = _usage_delta(self._tracker_totals(), before)
            self._phase_usage['sample'] = {
                key: self._phase_usage['sample'][key] + spent[key] for key in spent
            }
            report['seconds'] = time.perf_counter() - start
            report['accepted_rows'] = min(num_accepted, num_rows)
            report['discarded'] = dict(report['discarded'])
            report['invalid_details'] = dict(report['invalid_details'])
            report['failed_batches'] = dict(report['failed_batches'])
            report['tokens'] = spent['prompt_tokens'] + spent['completion_tokens']
            self._sampling_report = report

        result = pd.concat([f for f in accepted if len(f)], ignore_index=True) if num_accepted \
            else pd.DataFrame(columns=columns)
        return result.iloc[:num_rows].reset_index(drop=True)

    def _sampling_failure(self, num_rows, num_accepted, report):
        discarded = ', '.join(f'{k} {v}' for k, v in report['discarded'].most_common()) or 'none'
        failed = ', '.join(f'{k} {v}' for k, v in report['failed_batches'].items()) or 'none'
        return (
            f'SYNTHIA produced only {num_accepted} of the {num_rows} rows requested after '
            f"{report['llm_batches']} LLM calls ({report['generated_rows']} rows generated; "
            f'discarded rows: {discarded}; failed calls: {failed}). Raise max_tries_per_batch, '
            'use a stronger model (llm=...) or relax enforce_min_max_values.'
        )

    # ----------------------------------------------------------------------------------------
    # Reporting
    # ----------------------------------------------------------------------------------------
    def get_history(self):
        """Return every fit round: diagnostics, feedback, decision, validity counts and cost.

        Returns:
            list[dict]:
                One dict per round with ``round``, ``num_generated``, ``num_valid``,
                ``invalid_rows`` (by reason), ``invalid_details`` (by ``reason:column``),
                ``failed_batches``, ``num_exact_copies``, ``num_near_copies``, ``score``,
                ``improved``, ``diagnostics`` (the analyzer report as a dict), ``summary``
                (the statistics text the discriminator read), ``feedback`` (what the next
                generator prompt carries), ``feedback_source`` (``'discriminator'``, or
                ``'analyzer'`` when the discriminator's feedback was unusable),
                ``discriminator_feedback`` (what the discriminator wrote), ``decision``,
                ``discriminator_error``, ``prompt_feedback`` (the feedback in that round's
                generator prompt), ``llm_calls``, ``tokens`` and ``seconds``.
        """
        return copy.deepcopy(self._history)

    def get_fit_summary(self):
        """Return how the fit loop ended.

        Returns:
            dict:
                ``rounds``, ``stop_reason`` (``'discriminator_real'``, ``'no_improvement'``,
                ``'token_budget'`` or ``'max_rounds'``), ``final_round`` (whose prompt
                ``sample`` uses: the round judged Real, else the best-scoring one),
                ``best_score``, ``acceptance_rate`` (valid, non-copied rows per generated row)
                and ``seconds``.
        """
        return dict(self._fit_summary)

    def get_sampling_report(self):
        """Return what the last ``sample`` call did: calls, rows generated, discards by reason.

        Returns:
            dict:
                ``num_rows``, ``llm_batches``, ``generated_rows``, ``valid_rows``,
                ``accepted_rows``, ``discarded`` (by reason, copies of real rows included),
                ``invalid_details``, ``failed_batches``, ``tokens`` and ``seconds``.
        """
        return copy.deepcopy(self._sampling_report)

    def get_generator_prompt(self):
        """Return the generator messages ``sample`` uses (the final prompt).

        Returns:
            list[dict]:
                The chat messages.
        """
        self._validate_fit_before_sample()
        return self._generator_messages(self._final_context, self.batch_size)

    def get_usage(self):
        """Return the LLM usage: calls, tokens, cache hits, discards, and the fit/sample split.

        Returns:
            dict:
                The generator client's ``usage.as_dict()`` (with the discriminator's counts
                added when it is another client), plus ``phases``: ``{'fit': {...},
                'sample': {...}}`` with ``llm_calls``, ``prompt_tokens``,
                ``completion_tokens`` and ``cached_calls`` of each phase.
        """
        if self._generator_client is None:
            usage = {
                'llm_calls': 0, 'prompt_tokens': 0, 'completion_tokens': 0, 'cached_calls': 0,
                'retries': 0, 'reasks': 0, 'discarded': {}, 'model': None, 'cost': None,
            }
        else:
            usage = self._generator_client.usage.as_dict()
            other = self._discriminator_client
            if other is not None and other is not self._generator_client:
                extra = other.usage.as_dict()
                for key in ('llm_calls', 'prompt_tokens', 'completion_tokens', 'cached_calls',
                            'retries', 'reasks'):
                    usage[key] += extra[key]
                discarded = Counter(usage['discarded'])
                discarded.update(extra['discarded'])
                usage['discarded'] = dict(sorted(discarded.items()))
                if extra['model'] != usage['model']:
                    usage['model'] = f"{usage['model']} + {extra['model']}"
                if usage['cost'] is not None or extra['cost'] is not None:
                    usage['cost'] = (usage['cost'] or 0.0) + (extra['cost'] or 0.0)
        usage['phases'] = {phase: dict(counts) for phase, counts in self._phase_usage.items()}
        return usage

    @classmethod
    def load(cls, filepath):
        """Load a synthesizer saved with :meth:`save` (SDV's ``load_synthesizer`` works too).

        Args:
            filepath (str):
                The file written by ``save``.

        Returns:
            SynthiaSynthesizer:
                The synthesizer (API keys are not stored: an OpenAI-compatible client reads
                its key from the environment again).
        """
        from sdv.utils import load_synthesizer

        synthesizer = load_synthesizer(filepath)
        if not isinstance(synthesizer, cls):
            raise SynthesizerInputError(
                f"The file '{filepath}' holds a {type(synthesizer).__name__}, not a "
                f'{cls.__name__}.'
            )
        return synthesizer

