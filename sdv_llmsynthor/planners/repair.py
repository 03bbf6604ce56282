"""Validation and repair of LLM output against the table's columns: one place for every planner.

LLM output is never trusted. Every value a planner reads from a reply goes through a
:class:`ProposalRepairer`, which either returns a value the engine can use or rejects the whole
proposal (completion, household) with a reason:

- **unknown category**: repaired when unambiguous (an exact match ignoring case and extra
  whitespace, or a single close match above ``min_similarity`` with :mod:`difflib`), else
  discarded (``unknown_category``);
- **numeric or datetime values and ranges**: a bin label, a ``[min, max]`` pair or a single
  value; an inverted range is swapped, a range partly outside ``[min, max]`` is clipped, one
  entirely outside is discarded (``out_of_range``), an unreadable one too (``invalid_range``);
- **missing column**: left out (the engine completes it), counted as the repair
  ``missing_column``; unknown extra keys are ignored (``unknown_column``);
- **counts**: ``num <= 0`` is discarded (``non_positive_count``), a count above
  ``max_count_factor`` times the batch is capped (``capped_count``);
- **weights**: non-positive or non-numeric weights are discarded (``invalid_weight``);
- **anchored columns**: a completion that changes an anchor's fixed value is discarded
  (``anchor_mismatch``).

Discards go to the run's ledger (``state.usage.record_discard(reason)``), one per rejected
proposal; repairs are counted in a :class:`collections.Counter` the planner owns and reports.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdv_llmsynthor.planners.base import Range

__all__ = [
    'CallResult',
    'HouseholdKeys',
    'ProposalRepairer',
    'RejectedProposal',
    'TableView',
    'build_table_view',
    'call_llm',
    'repair_household',
    'same_value',
]

_NUMBER = re.compile(r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
_DATE = re.compile(r'\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?')
_SIMPLE_NUMBER = r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'
# A short range label as the prompts write it ('18-23', '-5 to -1'), maybe bracketed.
_RANGE_TEXT = re.compile(
    rf'^\s*[\[(]?\s*({_SIMPLE_NUMBER})\s*(?:-|\u2013|to|,)\s*({_SIMPLE_NUMBER})\s*[\])]?\s*$')


class RejectedProposal(Exception):  # noqa: N818 - internal control flow, never escapes
    """Raised inside the repairer when a proposal must be discarded, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _normalise_text(value: Any) -> str:
    return ' '.join(str(value).split()).casefold()


def same_value(left: Any, right: Any) -> bool:
    """Equality that keeps booleans apart from 0/1 and tolerates float noise.

    Args:
        left (object):
            A value.
        right (object):
            Another value.

    Returns:
        bool
    """
    if isinstance(left, (bool, np.bool_)) or isinstance(right, (bool, np.bool_)):
        return (isinstance(left, (bool, np.bool_)) and isinstance(right, (bool, np.bool_))
                and bool(left) == bool(right))
    if isinstance(left, (int, float, np.integer, np.floating)) and isinstance(
            right, (int, float, np.integer, np.floating)):
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-9)
    return left == right


def _to_float(value: Any, kind: str) -> float | None:
    """A number from a JSON value: numbers, numeric strings, ISO dates for datetimes."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        text = value.strip()
        if kind == 'datetime':
            from sdv_llmsynthor.spec.resolve import edge_to_float

            try:
                return edge_to_float(text, 'datetime')
            except (TypeError, ValueError):
                pass
        try:
            number = float(text.replace(',', ''))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class ProposalRepairer:
    """Check and repair the values of LLM proposals for one table.

    Args:
        columns (dict[str, ColumnPrompt]):
            The table's columns as the prompts describe them (``llm.prompts.ColumnPrompt``):
            categories, discrete values, bin labels, ``[min, max]``.
        usage (UsageLedger or None):
            Where discards are counted (``record_discard``).
        repairs (collections.Counter or None):
            Where repairs are counted; a new one when None.
        min_similarity (float):
            Cutoff of the :mod:`difflib` close match for unknown categories. Defaults to 0.85.
        max_count_factor (float):
            Counts above this many times the batch are capped. Defaults to 10.
    """

    def __init__(self, columns: Mapping[str, Any], usage: Any = None,
                 repairs: Counter | None = None, min_similarity: float = 0.85,
                 max_count_factor: float = 10.0) -> None:
        self.columns = dict(columns)
        self.usage = usage
        self.repairs = Counter() if repairs is None else repairs
        self.min_similarity = float(min_similarity)
        self.max_count_factor = float(max_count_factor)

    # ------------------------------------------------------------------ bookkeeping
    def repaired(self, reason: str, n: int = 1) -> None:
        """Count ``n`` repairs under ``reason``."""
        if n:
            self.repairs[reason] += int(n)

    def discard(self, reason: str, n: int = 1) -> None:
        """Count ``n`` discarded proposals under ``reason`` in the run's ledger."""
        if n and self.usage is not None:
            self.usage.record_discard(reason, n)

    # ------------------------------------------------------------------ single values
    def repair_category(self, column: Any, raw: Any) -> Any:
        """Return the valid category (or discrete value) ``raw`` stands for.

        Args:
            column (ColumnPrompt):
                The column (with ``categories`` or ``values``).
            raw (object):
                What the LLM wrote.

        Returns:
            object:
                The category exactly as the spec spells it.

        Raises:
            RejectedProposal:
                ``unknown_category`` when no unambiguous match exists.
        """
        options = column.categories if column.categories is not None else column.values or []
        if raw is None:
            if column.allow_missing:
                return None
            raise RejectedProposal('unknown_category')
        if isinstance(raw, (list, tuple)):
            if len(raw) == 1:
                self.repaired('single_item_list')
                return self.repair_category(column, raw[0])
            raise RejectedProposal('multiple_values')
        if isinstance(raw, Mapping):
            raise RejectedProposal('unknown_category')

        for option in options:
            if same_value(option, raw):
                return option

        if column.categories is None:
            # A discrete numeric support: numbers written as text, or with float noise.
            number = _to_float(raw, column.kind)
            if number is not None:
                for option in options:
                    if same_value(float(option), number):
                        self.repaired('value_format')
                        return option
            raise RejectedProposal('unknown_category')

        text = _normalise_text(raw)
        matches = [option for option in options if _normalise_text(option) == text]
        if len(matches) == 1:
            self.repaired('category_case')
            return matches[0]
        if len(matches) > 1:
            raise RejectedProposal('unknown_category')

        labels = {str(option): option for option in options}
        close = difflib.get_close_matches(str(raw), list(labels), n=2, cutoff=self.min_similarity)
        if len(close) == 1:
            self.repaired('category_close_match')
            return labels[close[0]]
        raise RejectedProposal('unknown_category')

    def _interval_from_label(self, column: Any, raw: str,
                             extra_labels: Mapping[str, tuple[float, float]] | None):
        labels = dict(column.labels)
        if extra_labels:
            labels.update(extra_labels)
        if raw in labels:
            return labels[raw], False
        squeezed = ''.join(raw.split())
        for label, bounds in labels.items():
            if ''.join(label.split()) == squeezed:
                return bounds, True
        return None, False

    def repair_interval(self, column: Any, raw: Any,
                        extra_labels: Mapping[str, tuple[float, float]] | None = None) -> Any:
        """Return a :class:`Range` (or a single number) for a numeric or datetime column.

        Args:
            column (ColumnPrompt):
                The column (with ``labels``, ``minimum`` and ``maximum``).
            raw (object):
                A bin label (``'35-45'``, ``'[35, 45)'``), a ``[min, max]`` pair, or a single
                value.
            extra_labels (dict or None):
                More accepted labels (an anchor's fixed interval), label -> ``(low, high)``.

        Returns:
            Range or float:
                A range inside ``[min, max]`` (datetimes in seconds), or a single value for a
                ``[x, x]`` pair or a plain number.

        Raises:
            RejectedProposal:
                ``out_of_range``, ``invalid_range`` or ``multiple_values``.
        """
        if raw is None:
            if column.allow_missing:
                return None
            raise RejectedProposal('invalid_range')

        low = high = None
        if isinstance(raw, str):
            bounds, reformatted = self._interval_from_label(column, raw, extra_labels)
            if bounds is not None:
                if reformatted:
                    self.repaired('label_format')
                return Range(float(bounds[0]), float(bounds[1]))
            pattern = _DATE if column.kind == 'datetime' else _NUMBER
            pair = _RANGE_TEXT.match(raw) if column.kind != 'datetime' else None
            found = list(pair.groups()) if pair else pattern.findall(raw)
            if len(found) == 1:
                low = high = _to_float(found[0], column.kind)
            elif len(found) == 2:
                low, high = (_to_float(part, column.kind) for part in found)
            else:
                raise RejectedProposal('invalid_range')
            self.repaired('label_format')
        elif isinstance(raw, (list, tuple)):
            if len(raw) == 1:
                low = high = _to_float(raw[0], column.kind)
            elif len(raw) == 2:
                low, high = _to_float(raw[0], column.kind), _to_float(raw[1], column.kind)
            else:
                raise RejectedProposal('multiple_values')
        elif isinstance(raw, Mapping):
            low = _to_float(raw.get('min'), column.kind)
            high = _to_float(raw.get('max'), column.kind)
        else:
            low = high = _to_float(raw, column.kind)

        if low is None or high is None:
            raise RejectedProposal('invalid_range')
        if high < low:
            self.repaired('inverted_range')
            low, high = high, low

        minimum = -math.inf if column.minimum is None else column.minimum
        maximum = math.inf if column.maximum is None else column.maximum
        if high < minimum or low > maximum:
            raise RejectedProposal('out_of_range')
        if low < minimum or high > maximum:
            self.repaired('clipped_range')
            low, high = max(low, minimum), min(high, maximum)
        if low == high:
            return int(low) if column.integer and float(low).is_integer() else low
        return Range(float(low), float(high))

    def repair_value(self, column: Any, raw: Any,
                     extra_labels: Mapping[str, tuple[float, float]] | None = None) -> Any:
        """Repair one value of any column (dispatches on the column's kind)."""
        if column.is_binned or (column.categories is None and column.values is None):
            return self.repair_interval(column, raw, extra_labels)
        return self.repair_category(column, raw)

    def repair_count(self, raw: Any, batch_rows: int) -> int:
        """A positive record count, capped at ``max_count_factor * batch_rows``.

        Args:
            raw (object):
                The LLM's ``num``.
            batch_rows (int):
                Records the engine wants this iteration.

        Returns:
            int

        Raises:
            RejectedProposal:
                ``invalid_count`` or ``non_positive_count``.
        """
        number = _to_float(raw, 'numerical')
        if number is None:
            raise RejectedProposal('invalid_count')
        count = int(round(number))
        if count <= 0:
            raise RejectedProposal('non_positive_count')
        cap = int(max(1, math.floor(self.max_count_factor * max(int(batch_rows), 1))))
        if count > cap:
            self.repaired('capped_count')
            count = cap
        return count

    def repair_weight(self, raw: Any) -> float:
        """A positive finite weight.

        Raises:
            RejectedProposal:
                ``invalid_weight``.
        """
        number = _to_float(raw, 'numerical')
        if number is None or number <= 0:
            raise RejectedProposal('invalid_weight')
        return float(number)

    # ------------------------------------------------------------------ records
    def repair_record(self, raw: Any, columns: Sequence[str],
                      fixed: Mapping[str, Any] | None = None,
                      extra_labels: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
                      ignore: Sequence[str] = ()) -> dict[str, Any]:
        """Repair one record (a completion, a proposal's values, a person).

        Args:
            raw (dict):
                What the LLM wrote.
            columns (list of str):
                The columns expected (others are ignored).
            fixed (dict or None):
                Column -> value the record must keep (a category, a :class:`Range` or a
                number): the anchor's values.
            extra_labels (dict or None):
                Per column, more accepted bin labels (the anchor's own intervals).
            ignore (list of str):
                Keys that are not columns but are expected (``weight``, ``persons``...).

        Returns:
            dict:
                Column -> valid value; missing columns left out.

        Raises:
            RejectedProposal:
                When a value cannot be repaired, or a fixed value was changed.
        """
        if not isinstance(raw, Mapping):
            raise RejectedProposal('invalid_record')
        fixed = fixed or {}
        extra_labels = extra_labels or {}
        unknown = [key for key in raw if key not in columns and key not in ignore]
        self.repaired('unknown_column', len(unknown))
        out: dict[str, Any] = {}
        for name in columns:
            column = self.columns[name]
            if name not in raw:
                if name in fixed:
                    self.repaired('missing_column')
                    out[name] = fixed[name]
                    continue
                self.repaired('missing_column')
                continue
            value = self.repair_value(column, raw[name], extra_labels.get(name))
            if name in fixed and not _within(value, fixed[name]):
                raise RejectedProposal('anchor_mismatch')
            out[name] = value
        return out

    def check_record(self, raw: Any, columns: Sequence[str], **kwargs: Any) -> dict | None:
        """Like :meth:`repair_record`, but count the discard and return None on rejection."""
        try:
            return self.repair_record(raw, columns, **kwargs)
        except RejectedProposal as rejected:
            self.discard(rejected.reason)
            return None


def _within(value: Any, fixed: Any) -> bool:
    """Whether a repaired value agrees with an anchor's fixed value."""
    if isinstance(fixed, Range):
        low, high = float(fixed.low), float(fixed.high)
        if isinstance(value, Range):
            return float(value.low) >= low - 1e-9 and float(value.high) <= high + 1e-9
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return low - 1e-9 <= float(value) <= high + 1e-9
        return False
    return same_value(value, fixed)


# --------------------------------------------------------------------------- table views
_DEFAULT_SIZES = list(range(1, 9))
_MAX_SIZES = 20


@dataclass
class TableView:
    """The columns an LLM planner shows and validates, for one table (and its child table).

    Build one with :func:`build_table_view`.

    Args:
        table (str):
            The table proposed (the parent table for households).
        columns (dict[str, ColumnPrompt]):
            Its modelled columns, in metadata order.
        child_table (str or None):
            The child (persons) table, for households.
        child_columns (dict[str, ColumnPrompt]):
            The child table's modelled columns.
        count_column (str or None):
            The parent column holding the number of children (``<child>__count``).
        sizes (list[int]):
            Allowed household sizes.
        derived (dict[str, object]):
            Other derived parent columns (name -> ``DerivedColumnSpec``), shown as constraints.
        rules (list[str]):
            Validity rules of the table(s), as ``'name: expression'``.
        context (str):
            The spec's context text.
    """

    table: str
    columns: dict[str, Any]
    child_table: str | None = None
    child_columns: dict[str, Any] = field(default_factory=dict)
    count_column: str | None = None
    sizes: list[int] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    context: str = ''

    @property
    def is_households(self) -> bool:
        """bool: Whether households with their persons are proposed."""
        return self.child_table is not None

    def repairer(self, usage: Any, repairs: Counter, child: bool = False) -> ProposalRepairer:
        """A :class:`ProposalRepairer` over the table's (or the child table's) columns."""
        columns = dict(self.child_columns if child else self.columns)
        return ProposalRepairer(columns, usage=usage, repairs=repairs)


def _household_sizes(column: Any) -> list[int]:
    if column is None:
        return list(_DEFAULT_SIZES)
    values = getattr(column, 'values', None)
    if values:
        sizes = sorted({int(round(float(v))) for v in values if float(v) >= 0})
    else:
        low = getattr(column, 'min', None)
        high = getattr(column, 'max', None)
        if low is None or high is None:
            return list(_DEFAULT_SIZES)
        sizes = list(range(max(int(math.ceil(low)), 0), int(math.floor(high)) + 1))
    sizes = [size for size in sizes if size >= 1] or [1]
    return sizes[:_MAX_SIZES]


def build_table_view(state: Any) -> TableView:
    """Describe the table of a :class:`PlannerState` for prompts and repairs.

    Args:
        state (PlannerState):
            The run's state.

    Returns:
        TableView
    """
    from sdv_llmsynthor.llm.prompts import ColumnPrompt
    from sdv_llmsynthor.spec.model import child_count_column
    from sdv_llmsynthor.spec.resolve import modelled_columns

    resolved = state.columns[state.table]
    columns = {name: ColumnPrompt.from_resolved(resolved[name])
               for name in modelled_columns(resolved)}
    rules = list(state.rules_text.get(state.table, []))
    view = TableView(table=state.table, columns=columns, rules=rules,
                     context=state.context_text or '')
    if state.child_table is not None:
        child_resolved = state.columns[state.child_table]
        view.child_table = state.child_table
        view.child_columns = {name: ColumnPrompt.from_resolved(child_resolved[name])
                              for name in modelled_columns(child_resolved)}
        view.count_column = child_count_column(state.child_table)
        view.sizes = _household_sizes(resolved.get(view.count_column))
        view.derived = {
            name: column.derived for name, column in resolved.items()
            if column.derived is not None and name != view.count_column
        }
        view.rules += [f'{state.child_table}.{rule}'
                       for rule in state.rules_text.get(state.child_table, [])]
    return view


def describe_derived(name: str, derived: Any, value: Any) -> str:
    """Text of a derived household column's fixed value, e.g. ``'has_senior = True: any(...)'``.

    Args:
        name (str):
            The derived column.
        derived (DerivedColumnSpec):
            Its definition.
        value (object):
            The fixed value (a category or a :class:`Range`).

    Returns:
        str
    """
    shown = str(value)
    parts = [derived.function]
    if derived.column:
        parts.append(f'of {derived.column}')
    if derived.predicate:
        parts.append(f'where {derived.predicate}')
    return f"{name} = {shown} ({' '.join(parts)} over the household's members)"


# --------------------------------------------------------------------------- LLM calls
_CONFIGURATION_STATUS = frozenset({401, 403, 404})


def _tracker_snapshot(client: Any) -> tuple[int, int, int] | None:
    tracker = getattr(client, 'usage', None)
    try:
        return (int(tracker.llm_calls), int(tracker.prompt_tokens),
                int(tracker.completion_tokens))
    except (AttributeError, TypeError, ValueError):
        return None


def record_usage(ledger: Any, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
    """Record ``calls`` completions and their tokens in a ledger (``record_call`` per call)."""
    if ledger is None or calls <= 0:
        return
    ledger.record_call(prompt_tokens, completion_tokens)
    for _ in range(calls - 1):
        ledger.record_call(0, 0)


@dataclass
class CallResult:
    """What one LLM request gave.

    Args:
        data (dict or None):
            The reply (schema-valid, or salvaged from an invalid reply), None on failure.
        failure (str or None):
            The discard reason when ``data`` is None.
        salvaged (bool):
            Whether ``data`` was recovered from a reply the client rejected.
        cached (bool):
            Whether the reply came from the response cache.
        truncated (bool):
            Whether ``data`` is the complete part of a reply cut off at ``max_tokens``
            (``salvaged`` is then True too): its last items may be partial, so the caller
            checks each item against its schema.
    """

    data: dict[str, Any] | None = None
    failure: str | None = None
    salvaged: bool = False
    cached: bool = False
    truncated: bool = False


def call_llm(client: Any, messages: list[dict[str, Any]], schema: dict[str, Any],
             params: dict[str, Any], usage: Any = None) -> CallResult:
    """Ask for one JSON object; never raise on a bad reply or a failing endpoint.

    Calls and tokens (re-asks included) go to ``usage`` (``record_call``, or ``record_cached``
    for a cached reply). A reply the client rejects for not following the schema is salvaged
    when it still parses as JSON (the repairs then decide what is usable); a reply cut off at
    ``max_tokens`` keeps its complete part (``truncated``; the caller checks each item).
    Otherwise the failure is returned as a discard reason: ``invalid_json``,
    ``schema_violation``, ``truncated_reply``, ``refusal``, ``transport_error`` or
    ``request_error``. The caller counts it.

    Args:
        client (LLMClient):
            The client.
        messages (list[dict]):
            Chat messages.
        schema (dict):
            The JSON Schema of the reply.
        params (dict):
            Sampling parameters.
        usage (UsageLedger or None):
            The run's ledger.

    Returns:
        CallResult

    Raises:
        LLMRequestError:
            When the endpoint rejects the request for a reason retrying cannot fix
            (authentication, unknown model: HTTP 401, 403 or 404).
    """
    from sdv_llmsynthor.errors import (
        LLMError,
        LLMOutputError,
        LLMRefusalError,
        LLMRequestError,
        LLMTransportError,
        LLMTruncatedOutputError,
    )
    from sdv_llmsynthor.llm.structured import extract_json_object, salvage_truncated_json

    before = _tracker_snapshot(client)
    response = None
    result = CallResult()
    try:
        response = client.complete_json(messages, schema, **params)
        result.data = response.data
        result.cached = bool(getattr(response, 'cached', False))
    except LLMRefusalError:
        result.failure = 'refusal'
    except LLMTruncatedOutputError as error:
        salvaged = salvage_truncated_json(getattr(error, 'last_text', '') or '')
        if isinstance(salvaged, dict) and salvaged:
            result.data = salvaged
            result.salvaged = result.truncated = True
        else:
            result.failure = 'truncated_reply'
    except LLMOutputError as error:
        reason = getattr(error, 'discard_reason', None) or 'invalid_json'
        salvaged = None
        if reason == 'schema_violation':
            try:
                salvaged = extract_json_object(getattr(error, 'last_text', '') or '')
            except ValueError:
                salvaged = None
        if isinstance(salvaged, dict):
            result.data = salvaged
            result.salvaged = True
        else:
            result.failure = reason
    except LLMTransportError:
        result.failure = 'transport_error'
    except LLMRequestError as error:
        if getattr(error, 'status_code', None) in _CONFIGURATION_STATUS:
            raise
        result.failure = 'request_error'
    except (LLMError, OSError):
        result.failure = 'transport_error'
    finally:
        after = _tracker_snapshot(client)
        if response is not None and result.cached:
            if usage is not None:
                usage.record_cached()
        elif before is not None and after is not None:
            record_usage(usage, after[0] - before[0], after[1] - before[1], after[2] - before[2])
        elif response is not None:
            tokens = getattr(response, 'usage', None) or {}
            record_usage(usage, 1, int(tokens.get('prompt_tokens', 0)),
                         int(tokens.get('completion_tokens', 0)))
    return result


# --------------------------------------------------------------------------- households
@dataclass
class HouseholdKeys:
    """Property names of a household object in LLM replies.

    Args:
        size (str):
            The household size.
        persons (str):
            The members (no anchored member).
        anchor_person (str):
            The anchored member.
        other_persons (str):
            The other members when one is anchored.
        meta (tuple of str):
            Other non-column properties (``weight``...).
    """

    size: str = 'household_size'
    persons: str = 'persons'
    anchor_person: str = 'anchor_person'
    other_persons: str = 'other_persons'
    meta: tuple[str, ...] = ()

    @property
    def all(self) -> list[str]:
        """list[str]: Every non-column property name."""
        return [self.size, self.persons, self.anchor_person, self.other_persons, *self.meta]

    @classmethod
    def for_columns(cls, columns: Sequence[str], meta: Sequence[str] = ()) -> HouseholdKeys:
        """Names that collide with no column."""
        from sdv_llmsynthor.llm.prompts import meta_key

        taken = set(columns)
        return cls(
            size=meta_key('household_size', taken),
            persons=meta_key('persons', taken),
            anchor_person=meta_key('anchor_person', taken),
            other_persons=meta_key('other_persons', taken),
            meta=tuple(meta),
        )


def repair_household(view: TableView, raw: Any, parent: ProposalRepairer,
                     child: ProposalRepairer, keys: HouseholdKeys,
                     fixed: Mapping[str, Any] | None = None,
                     person_fixed: Mapping[str, Any] | None = None,
                     extra_labels: Mapping[str, Any] | None = None,
                     person_extra_labels: Mapping[str, Any] | None = None,
                     fixed_size: int | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Repair one household with its members.

    Args:
        view (TableView):
            The parent and child columns.
        raw (dict):
            What the LLM wrote.
        parent (ProposalRepairer):
            Repairer of the household columns.
        child (ProposalRepairer):
            Repairer of the members' columns.
        keys (HouseholdKeys):
            Property names.
        fixed (dict or None):
            Household columns the anchor fixes.
        person_fixed (dict or None):
            Member columns the anchor fixes (the anchored member, written first).
        extra_labels (dict or None):
            Per household column, more accepted bin labels.
        person_extra_labels (dict or None):
            Per member column, more accepted bin labels.
        fixed_size (int or None):
            The size the anchor fixes.

    Returns:
        tuple[dict, list[dict]]:
            The household's assignments (with the child count) and one dict per member.

    Raises:
        RejectedProposal:
            ``invalid_household``, ``empty_household``, ``household_size_mismatch``, or any
            reason of a household or member value.
    """
    if not isinstance(raw, Mapping):
        raise RejectedProposal('invalid_household')
    household_fixed = {k: v for k, v in (fixed or {}).items() if k in view.columns}
    household = parent.repair_record(raw, list(view.columns), fixed=household_fixed,
                                     extra_labels=extra_labels, ignore=keys.all)
    if person_fixed is not None:
        first = raw.get(keys.anchor_person)
        others = raw.get(keys.other_persons) or []
        if first is None and isinstance(raw.get(keys.persons), list) and raw[keys.persons]:
            first, others = raw[keys.persons][0], raw[keys.persons][1:]
        raw_persons = ([first] if first is not None else []) + (
            list(others) if isinstance(others, list) else [])
    else:
        raw_persons = raw.get(keys.persons)
    if not isinstance(raw_persons, list):
        raise RejectedProposal('invalid_household')
    if not raw_persons:
        raise RejectedProposal('empty_household')

    persons = []
    for position, person in enumerate(raw_persons):
        persons.append(child.repair_record(
            person, list(view.child_columns),
            fixed=person_fixed if (position == 0 and person_fixed is not None) else None,
            extra_labels=person_extra_labels if position == 0 else None,
        ))

    size = len(persons)
    if fixed_size is not None and size != int(fixed_size):
        raise RejectedProposal('household_size_mismatch')
    if view.sizes and size not in view.sizes:
        raise RejectedProposal('household_size_mismatch')
    written = _to_float(raw.get(keys.size), 'numerical')
    if written is None or int(round(written)) != size:
        parent.repaired('household_size')
    if view.count_column is not None:
        household[view.count_column] = size
    return household, persons
