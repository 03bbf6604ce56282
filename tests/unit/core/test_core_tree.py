"""Unit tests of the matching that hands an edge's children to existing parents."""

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.tree import attach_children, match_units


def test_match_units__exact_cells_one_to_one():
    """Each parent gets a distinct unit with the same cells when the pool has them."""
    # Setup
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, size=(200, 2))
    units = rng.permutation(targets)

    # Run
    assigned, agreed = match_units(targets, units, np.random.default_rng(1))

    # Assert
    assert len(np.unique(assigned)) == 200
    assert (units[assigned] == targets).all()
    assert (agreed == 2).all()


def test_match_units__falls_back_to_leading_columns_then_reuses_units():
    """Without an exact unit, the first column still agrees; fewer units are reused."""
    # Setup
    targets = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    units = np.array([[0, 5], [1, 5]])

    # Run
    assigned, agreed = match_units(targets, units, np.random.default_rng(0))

    # Assert
    assert (units[assigned, 0] == targets[:, 0]).all()
    assert (agreed == 1).all()
    assert sorted(np.bincount(assigned)) == [2, 2]


def test_attach_children__children_follow_their_unit_to_the_new_parent():
    """A unit's children move to the parent it was matched to (twice if reused)."""
    # Setup
    children = pd.DataFrame({'value': ['a0', 'a1', 'b0', 'c0']})
    child_units = np.array([0, 0, 1, 2])
    assigned = np.array([2, 0, 0])

    # Run
    moved, keys = attach_children(children, child_units, assigned, np.array([10, 11, 12]))

    # Assert
    assert moved['value'].tolist() == ['c0', 'a0', 'a1', 'a0', 'a1']
    assert keys.tolist() == [10, 11, 11, 12, 12]
