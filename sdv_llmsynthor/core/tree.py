"""Hand children synthesised for one edge of a tree to parents synthesised one level up.

The engine synthesises an edge (a parent table with its children) as whole units: a parent
row with its child rows, aligned with the parent's, the child's and the cross-table targets.
Below the root the parents already exist (a person was drawn with its household), so the
edge's own parent rows only *carry* their children: :func:`match_units` pairs each existing
parent with one synthesised unit whose parent columns agree (same categories, same main bins),
one to one, so that the children each existing parent receives follow the child counts and
child columns that parents like it have. Matching is exact on as many of the ranked columns
as can be (all of them first, then dropping the least important one at a time); parents
still unmatched when every unit is used get units again (with replacement), in the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ['attach_children', 'match_units']


def _key(codes: np.ndarray) -> np.ndarray:
    """One int64 key per row of an ``(rows, columns)`` code matrix (codes >= -1)."""
    if codes.shape[1] == 0:
        return np.zeros(len(codes), dtype=np.int64)
    frame = pd.DataFrame(codes)
    return frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy(dtype=np.int64)


def _pair_within(target_keys: np.ndarray, pool_keys: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pair targets and pool rows with equal keys, one to one, at random within each key."""
    target_order = rng.permutation(len(target_keys))
    pool_order = rng.permutation(len(pool_keys))
    targets = pd.DataFrame({'key': target_keys[target_order], 'target': target_order})
    pool = pd.DataFrame({'key': pool_keys[pool_order], 'unit': pool_order})
    targets['rank'] = targets.groupby('key').cumcount()
    pool['rank'] = pool.groupby('key').cumcount()
    pairs = targets.merge(pool, on=['key', 'rank'], how='inner')
    return pairs['target'].to_numpy(dtype=np.int64), pairs['unit'].to_numpy(dtype=np.int64)


def match_units(target_codes: np.ndarray, unit_codes: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Give every existing parent one synthesised unit with the same parent cells.

    Args:
        target_codes (numpy.ndarray):
            ``(parents, columns)`` codes of the existing parents, columns by importance.
        unit_codes (numpy.ndarray):
            ``(units, columns)`` codes of the synthesised units' parent rows, same columns.
        rng (numpy.random.Generator):
            Random generator (ties are broken at random).

    Returns:
        tuple[numpy.ndarray, numpy.ndarray]:
            The unit of every parent (``-1`` only when there is no unit at all), and how many
            leading columns its match agreed on.
    """
    target_codes = np.asarray(target_codes, dtype=np.int64).reshape(len(target_codes), -1)
    unit_codes = np.asarray(unit_codes, dtype=np.int64).reshape(len(unit_codes), -1)
    num_columns = target_codes.shape[1]
    if unit_codes.shape[1] != num_columns:
        raise ValueError(
            f'target_codes has {num_columns} columns but unit_codes has {unit_codes.shape[1]}.')
    assigned = np.full(len(target_codes), -1, dtype=np.int64)
    agreed = np.zeros(len(target_codes), dtype=np.int64)
    if len(unit_codes) == 0:
        return assigned, agreed
    both = np.concatenate([target_codes, unit_codes])
    keys = [_key(both[:, :depth]) for depth in range(num_columns + 1)]
    while (assigned < 0).any():
        free_units = np.ones(len(unit_codes), dtype=bool)
        for depth in range(num_columns, -1, -1):
            open_targets = np.flatnonzero(assigned < 0)
            open_units = np.flatnonzero(free_units)
            if len(open_targets) == 0 or len(open_units) == 0:
                break
            key = keys[depth]
            targets, units = _pair_within(key[open_targets], key[len(target_codes) + open_units],
                                          rng)
            assigned[open_targets[targets]] = open_units[units]
            agreed[open_targets[targets]] = depth
            free_units[open_units[units]] = False
    return assigned, agreed


def attach_children(children: pd.DataFrame, child_units: np.ndarray, assigned: np.ndarray,
                    parent_keys: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The child rows of every parent's unit, each pointing at its new parent.

    Args:
        children (pandas.DataFrame):
            The synthesised child rows.
        child_units (numpy.ndarray):
            The unit (row of the synthesised parents) of every child row.
        assigned (numpy.ndarray):
            The unit of every existing parent (:func:`match_units`).
        parent_keys (numpy.ndarray):
            The primary key of every existing parent.

    Returns:
        tuple[pandas.DataFrame, numpy.ndarray]:
            The child rows, grouped by parent in the parents' order (a unit used twice gives
            its children twice), and the parent key of each.
    """
    child_units = np.asarray(child_units, dtype=np.int64)
    num_units = int(max(child_units.max(initial=-1), assigned.max(initial=-1))) + 1
    order = np.argsort(child_units, kind='stable')
    starts = np.searchsorted(child_units[order], np.arange(num_units + 1))
    valid = assigned >= 0
    units = assigned[valid]
    lengths = starts[units + 1] - starts[units]
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = order[np.repeat(starts[units], lengths) + offsets]
    keys = np.repeat(np.asarray(parent_keys)[valid], lengths)
    return children.iloc[rows].reset_index(drop=True), keys
