"""Household composition: persons regrouped into the households where they fit.

A planner proposes households with their persons, but persons drawn from the person targets
are often drawn without regard to one another (two householders, a household typed "children
under 5" without a young child, a couple with one adult). Rejecting such a household wastes
every one of its persons although each is valid. The engine therefore *regroups* the persons of
a batch before it checks the households: persons swap households, one pair at a time, whenever
the swap lowers the number of household checks the two households fail. The checks are the
table's validity rules (over the household's derived columns: member counts, "has a child",
...), and the derived values the household must have: those its proposal states and those its
anchor fixes (a household written for the cell "n_elderly = 2" must hold two elderly persons).

Swaps keep every household's size and every person's values: the person marginals the planner
drew, and the member count, stay as they were; only who lives with whom changes. Households with
an invalid person are left alone (they are rejected whole anyway). The search is vectorised:
each round pairs the failing households among themselves, or with households that pass, draws
one member of each, and keeps the swaps that help. It is deterministic for a given generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.aggregate import compute_derived_columns

__all__ = ['RegroupResult', 'regroup_members']

_STALL_ROUNDS = 12
_BOOLEAN_FUNCTIONS = ('any', 'all')


@dataclass
class RegroupResult:
    """What :func:`regroup_members` did.

    Args:
        units (numpy.ndarray):
            The new household (position ``0..n-1``) of every person, in the persons' order.
        failing_before (int):
            Households failing a check before regrouping (among those regrouped).
        failing_after (int):
            Households failing a check afterwards.
        swaps (int):
            Swaps kept.
        rounds (int):
            Rounds run.
    """

    units: np.ndarray
    failing_before: int
    failing_after: int
    swaps: int
    rounds: int


class _Members:
    """Per-person derived contributions, aggregated over any subset of households."""

    def __init__(self, derived: dict[str, Any], persons: pd.DataFrame,
                 predicates: dict[str, Any] | None):
        self.derived = derived
        num_persons = len(persons)
        # Each person alone in a household: its own contribution to every derived column.
        self.single = compute_derived_columns(derived, persons, np.arange(num_persons),
                                              num_persons, predicates)

    def aggregate(self, persons: np.ndarray, owners: np.ndarray, num: int) -> pd.DataFrame:
        """Derived columns of ``num`` households whose members are ``persons`` (by owner)."""
        out = {}
        for name, definition in self.derived.items():
            values = self.single[name].to_numpy()[persons]
            function = definition.function
            if function in ('count', 'sum'):
                weights = np.nan_to_num(values.astype(float))
                total = np.bincount(owners, weights=weights, minlength=num)
                out[name] = total.astype(np.int64) if self.single[name].dtype.kind in 'iub' else (
                    total)
            elif function == 'any':
                out[name] = np.bincount(owners[values.astype(bool)], minlength=num) > 0
            elif function == 'all':
                out[name] = np.bincount(owners[~values.astype(bool)], minlength=num) == 0
            else:
                frame = pd.DataFrame({'owner': owners, 'value': values.astype(float)})
                grouped = frame.dropna().groupby('owner')['value']
                reduced = {'mean': grouped.mean, 'min': grouped.min, 'max': grouped.max}[
                    function]()
                out[name] = reduced.reindex(np.arange(num)).to_numpy()
        return pd.DataFrame(out, index=pd.RangeIndex(num))


def _failures(households: np.ndarray, persons: np.ndarray, owners: np.ndarray,
              columns: dict[str, np.ndarray], members: _Members, checker: Any,
              encoders: dict[str, Any], required: dict[str, tuple[np.ndarray, np.ndarray]]
              ) -> np.ndarray:
    """Number of checks each of ``households`` fails with the given members.

    ``persons[i]`` lives in ``households[owners[i]]`` (a household may be listed several
    times, with different members: each listing is checked on its own).
    """
    values = members.aggregate(persons, owners, len(households))
    data = {column: array[households] for column, array in columns.items()}
    for column in values.columns:
        data[column] = values[column].to_numpy()
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(households)))
    failed = np.zeros(len(households), dtype=np.int64)
    if checker is not None:
        result = checker.check(frame)
        for flags in result.failures.values():
            failed += np.asarray(flags, dtype=bool)
    for column, (low, high) in required.items():
        wanted_low, wanted_high = low[households], high[households]
        codes = encoders[column].encode(values[column])
        constrained = wanted_low >= 0
        failed += constrained & ((codes < wanted_low) | (codes >= wanted_high))
    return failed


def _member_positions(households: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
    """Slot positions of the members of ``households``, and the listing each belongs to."""
    lengths = sizes[households]
    positions = np.repeat(starts[households], lengths) + (
        np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    return positions, np.repeat(np.arange(len(households)), lengths)


def regroup_members(
    parents: pd.DataFrame,
    units: np.ndarray,
    persons: pd.DataFrame,
    derived: dict[str, Any],
    checker: Any,
    encoders: dict[str, Any],
    rng: np.random.Generator,
    required: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    eligible: np.ndarray | None = None,
    predicates: dict[str, Any] | None = None,
    max_rounds: int = 100,
    attempts: int = 4,
) -> RegroupResult:
    """Swap persons between households until fewer households fail their checks.

    Args:
        parents (pandas.DataFrame):
            The households (their own columns; derived columns are computed here).
        units (numpy.ndarray):
            The household (position in ``parents``) of every person.
        persons (pandas.DataFrame):
            The persons (natural values).
        derived (dict[str, DerivedColumnSpec]):
            The household's derived columns.
        checker (ValidityChecker or None):
            The household checks (its failures are counted per household), or None.
        encoders (dict[str, ColumnEncoder]):
            The household table's columns (to encode derived values for ``required``).
        rng (numpy.random.Generator):
            Random generator.
        required (dict[str, tuple[numpy.ndarray, numpy.ndarray]] or None):
            Per derived column, per household, the fine-code range ``[low, high)`` its value
            must fall in (``low = -1``: unconstrained).
        eligible (numpy.ndarray or None):
            Per household, whether it may be regrouped (e.g. all its persons valid). Defaults
            to every household with at least one person.
        predicates (dict[str, Expression] or None):
            Parsed predicates of the derived columns.
        max_rounds (int):
            At most this many rounds of swaps. Defaults to 100.
        attempts (int):
            Candidate swaps tried per pair of households and round. Defaults to 4.

    Returns:
        RegroupResult
    """
    units = np.asarray(units, dtype=np.int64)
    num_households = len(parents)
    required = {name: value for name, value in (required or {}).items() if name in derived}
    sizes = np.bincount(units, minlength=num_households).astype(np.int64)
    order = np.argsort(units, kind='stable')
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    slots = order.copy()  # slots[starts[h]:starts[h] + sizes[h]] are the persons of h
    allowed = sizes > 0
    if eligible is not None:
        allowed &= np.asarray(eligible, dtype=bool)
    candidates = np.flatnonzero(allowed)
    if len(candidates) < 2 or not derived or (checker is None and not required):
        return RegroupResult(units=units.copy(), failing_before=0, failing_after=0, swaps=0,
                             rounds=0)

    members = _Members(derived, persons, predicates)
    energy = np.zeros(num_households, dtype=np.int64)
    columns = {column: parents[column].to_numpy() for column in parents.columns
               if column not in derived}

    def evaluate(households, replace_at=None, replace_with=None):
        positions, owners = _member_positions(households, starts, sizes)
        people = slots[positions]
        if replace_at is not None:
            # Listing k has its slot replace_at[k] holding the person replace_with[k].
            swapped = positions == replace_at[owners]
            people = np.where(swapped, replace_with[owners], people)
        return _failures(households, people, owners, columns, members, checker, encoders,
                         required)

    energy[candidates] = evaluate(candidates)
    failing_before = int(np.count_nonzero(energy[candidates]))
    best_failing = failing_before
    stall = 0
    swaps = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        failing = candidates[energy[candidates] > 0]
        if len(failing) == 0:
            break
        passing = candidates[energy[candidates] == 0]
        if rounds % 2 == 1 and len(failing) >= 2:
            # Failing households among themselves: what one lacks another may have extra.
            shuffled = rng.permutation(failing)
            half = len(shuffled) // 2
            first, second = shuffled[:half], shuffled[half:2 * half]
        elif len(passing):
            count = min(len(failing), len(passing))
            first = rng.permutation(failing)[:count]
            second = rng.choice(passing, size=count, replace=False)
        else:
            continue
        if len(first) == 0:
            continue
        # A few candidate swaps per pair, checked in one call; the best improving one is kept.
        num_pairs = len(first)
        tries = attempts
        slot_a = starts[first][None, :] + np.floor(
            rng.random((tries, num_pairs)) * sizes[first][None, :]).astype(np.int64)
        slot_b = starts[second][None, :] + np.floor(
            rng.random((tries, num_pairs)) * sizes[second][None, :]).astype(np.int64)
        listed = np.concatenate([np.tile(first, tries), np.tile(second, tries)])
        replace_at = np.concatenate([slot_a.ravel(), slot_b.ravel()])
        replace_with = slots[np.concatenate([slot_b.ravel(), slot_a.ravel()])]
        new_energy = evaluate(listed, replace_at, replace_with)
        half = tries * num_pairs
        total = (new_energy[:half] + new_energy[half:]).reshape(tries, num_pairs)
        best = np.argmin(total, axis=0)
        columns_index = np.arange(num_pairs)
        before = energy[first] + energy[second]
        keep = total[best, columns_index] < before
        chosen_a = slot_a[best, columns_index][keep]
        chosen_b = slot_b[best, columns_index][keep]
        slots[chosen_a], slots[chosen_b] = slots[chosen_b], slots[chosen_a].copy()
        new_first = new_energy[:half].reshape(tries, num_pairs)[best, columns_index]
        new_second = new_energy[half:].reshape(tries, num_pairs)[best, columns_index]
        energy[first[keep]] = new_first[keep]
        energy[second[keep]] = new_second[keep]
        swaps += int(np.count_nonzero(keep))
        now_failing = int(np.count_nonzero(energy[candidates]))
        if now_failing < best_failing:
            best_failing, stall = now_failing, 0
        else:
            stall += 1
            if stall >= _STALL_ROUNDS:
                break

    new_units = np.empty(len(units), dtype=np.int64)
    new_units[slots] = np.repeat(np.arange(num_households), sizes)
    return RegroupResult(units=new_units, failing_before=failing_before,
                         failing_after=int(np.count_nonzero(energy[candidates])), swaps=swaps,
                         rounds=rounds)
