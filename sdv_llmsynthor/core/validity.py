"""Validity: spec rules and metadata constraints checked on every record, vectorised.

Every batch is checked against

- the spec's validity rules of its table (parsed once with the spec's safe expression
  language; a rule holds on a row or rejects it), and
- the metadata constraints: categories (a value outside the column's categories), ranges (a
  number or datetime outside the column's ``[min, max]``) and integer-ness.

A record failing any check is rejected. Every check counts how many records it saw and how
many it rejected (a record failing two rules counts under both), which makes the rejection
table of the run report. For parent/child tables, person rules run first, then household rules
on the households (with their derived columns); a household with an invalid person is rejected
whole and counted under ``persons_all_valid``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.encoding import ColumnEncoder
from sdv_llmsynthor.errors import ExpressionError

__all__ = ['DERIVED_AS_PROPOSED', 'PERSONS_ALL_VALID', 'RejectionTable', 'ValidityChecker',
           'ValidityResult']

PERSONS_ALL_VALID = 'persons_all_valid'
"""Name of the household check that every person of the household is valid."""

DERIVED_AS_PROPOSED = 'derived_as_proposed'
"""Name of the household check that its persons give the derived values (member counts, "has a
child", ...) its proposal states and its anchor fixes."""


@dataclass
class ValidityResult:
    """The outcome of checking one batch.

    Args:
        valid (numpy.ndarray):
            One boolean per record.
        failures (dict[str, numpy.ndarray]):
            Per check name, one boolean per record: True where the record fails it.
        errors (dict[str, str]):
            Per check name, the error raised while evaluating it (the whole batch then fails
            that check).
    """

    valid: np.ndarray
    failures: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class RejectionTable:
    """Counts of records checked and rejected, per table and check."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[int]] = {}

    def add(self, table: str, rule: str, checked: int, rejected: int) -> None:
        """Add counts for one check.

        Args:
            table (str):
                The table.
            rule (str):
                The check's name.
            checked (int):
                Records checked.
            rejected (int):
                Records rejected.
        """
        row = self._rows.setdefault((table, rule), [0, 0])
        row[0] += int(checked)
        row[1] += int(rejected)

    def add_result(self, table: str, result: ValidityResult) -> None:
        """Add the counts of a :class:`ValidityResult`."""
        checked = len(result.valid)
        for rule, failed in result.failures.items():
            self.add(table, rule, checked, int(np.count_nonzero(failed)))

    def rejected(self, table: str, rule: str) -> int:
        """Records rejected by one check so far."""
        return self._rows.get((table, rule), [0, 0])[1]

    def to_frame(self) -> pd.DataFrame:
        """Return the table: ``table``, ``rule``, ``checked``, ``rejected``, ``rate``.

        Returns:
            pandas.DataFrame:
                Sorted by rejections, most first.
        """
        records = [
            {'table': table, 'rule': rule, 'checked': checked, 'rejected': rejected,
             'rate': rejected / checked if checked else 0.0}
            for (table, rule), (checked, rejected) in self._rows.items()
        ]
        frame = pd.DataFrame(records, columns=['table', 'rule', 'checked', 'rejected', 'rate'])
        return frame.sort_values(['rejected', 'table', 'rule'], ascending=[False, True, True],
                                 kind='stable').reset_index(drop=True)

    def to_state(self) -> list[list]:
        """Return a JSON-serialisable state."""
        return [[table, rule, checked, rejected]
                for (table, rule), (checked, rejected) in self._rows.items()]

    @classmethod
    def from_state(cls, state: list[list]) -> RejectionTable:
        """Inverse of :meth:`to_state`."""
        table = cls()
        for name, rule, checked, rejected in state:
            table.add(name, rule, checked, rejected)
        return table


class ValidityChecker:
    """Check the records of one table against its rules and metadata constraints.

    Args:
        table (str):
            The table.
        encoders (dict[str, ColumnEncoder]):
            Its columns.
        rules (list[RuleSpec]):
            The spec's rules for the table.
        check_metadata (bool):
            Whether to check categories, ranges and integer-ness. Defaults to True.
    """

    def __init__(self, table: str, encoders: dict[str, ColumnEncoder], rules: list[Any],
                 check_metadata: bool = True):
        from sdv_llmsynthor.spec.expressions import parse_expression

        self.table = table
        self.encoders = encoders
        self.rules = []
        for rule in rules:
            self.rules.append((rule.name, parse_expression(rule.expression)))
        self.check_metadata = check_metadata

    @property
    def rule_names(self) -> list[str]:
        """list[str]: Names of the spec rules."""
        return [name for name, _ in self.rules]

    def _metadata_failures(self, frame: pd.DataFrame,
                           codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        failures = {}
        for column, encoder in self.encoders.items():
            if column not in frame.columns or encoder.derived is not None:
                continue
            series = frame[column]
            if encoder.categories is not None:
                column_codes = codes.get(column)
                if column_codes is None:
                    column_codes = encoder.encode(series)
                # Only rows without a code can fail: test those for missingness (notna on a
                # whole object column is most of this check's cost).
                failing = np.asarray(column_codes) < 0
                if failing.any():
                    rows = np.flatnonzero(failing)
                    failing[rows] = series.iloc[rows].notna().to_numpy()
                failures[f'{column} in categories'] = failing
                continue
            present = series.notna().to_numpy()
            if encoder.kind in ('numerical', 'datetime'):
                numbers = encoder.to_float(series)
                present = present & ~np.isnan(numbers)
                if encoder.is_discrete:
                    value_codes = encoder.encode_floats(numbers)
                    failures[f'{column} in values'] = present & (value_codes < 0)
                    continue
                if encoder.minimum is not None or encoder.maximum is not None:
                    low = -np.inf if encoder.minimum is None else encoder.minimum
                    high = np.inf if encoder.maximum is None else encoder.maximum
                    with np.errstate(invalid='ignore'):
                        outside = (numbers < low) | (numbers > high)
                    failures[f'{column} within [min, max]'] = present & outside
                if encoder.integer and encoder.kind == 'numerical':
                    with np.errstate(invalid='ignore'):
                        fractional = np.abs(numbers - np.round(numbers)) > 1e-9
                    failures[f'{column} is integer'] = present & fractional
        return failures

    def check(self, frame: pd.DataFrame,
              codes: dict[str, np.ndarray] | None = None) -> ValidityResult:
        """Check every record of a batch.

        Args:
            frame (pandas.DataFrame):
                The records (for a parent table, with its derived columns).
            codes (dict[str, numpy.ndarray] or None):
                Fine codes already computed for some columns (saves encoding them again).

        Returns:
            ValidityResult
        """
        num_rows = len(frame)
        failures: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        if self.check_metadata:
            failures.update(self._metadata_failures(frame, codes or {}))
        for name, expression in self.rules:
            if num_rows == 0:
                failures[name] = np.zeros(0, dtype=bool)
                continue
            try:
                holds = np.asarray(expression.evaluate(frame), dtype=bool)
            except (ExpressionError, TypeError, ValueError) as err:
                holds = np.zeros(num_rows, dtype=bool)
                errors[name] = str(err)
            failures[name] = ~holds
        valid = np.ones(num_rows, dtype=bool)
        for failed in failures.values():
            valid &= ~failed
        return ValidityResult(valid=valid, failures=failures, errors=errors)
