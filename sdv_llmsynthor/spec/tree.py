"""Relational trees: the parent/child edges of SDV metadata, and the spec of each edge.

The engine synthesises one parent table with one child table at a time (a household with its
persons is one unit). A tree of tables (``region > household > person > trip``, or
``users > sessions`` and ``users > reviews``) is synthesised edge by edge, top-down; each edge
is an ordinary parent/child spec cut from the whole spec by :func:`edge_spec`:

- the parent keeps its own columns and the derived columns aggregated over *this* child
  (with the child count); statistics and rules naming another child's derived columns belong
  to that other edge;
- the child keeps its own columns; its derived columns (over grandchildren) belong to the
  edge where it is the parent.

A statistic that spans the derived columns of two different children of one parent belongs
to no edge; :func:`untargeted_statistics` lists them (``derive_spec`` does not make them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sdv_llmsynthor.spec.expressions import parse_expression
from sdv_llmsynthor.spec.model import MacroSpec, TableSpec
from sdv_llmsynthor.spec.resolve import metadata_to_dict

__all__ = ['Edge', 'edge_metadata', 'edge_spec', 'relationship_edges', 'untargeted_statistics']


@dataclass(frozen=True)
class Edge:
    """One parent/child relationship of the metadata.

    Args:
        parent (str):
            The parent table.
        child (str):
            The child table.
        parent_primary_key (str):
            The parent's key the child refers to.
        child_foreign_key (str):
            The child's column holding it.
    """

    parent: str
    child: str
    parent_primary_key: str
    child_foreign_key: str


def relationship_edges(metadata: Any) -> tuple[str, list[Edge]]:
    """The root table and the edges of a metadata tree, top-down (breadth first).

    Args:
        metadata (sdv.metadata.Metadata or dict):
            The metadata.

    Returns:
        tuple[str, list[Edge]]:
            The root table and every edge, each after the edge that synthesises its parent.
            Edges of one parent keep the metadata's order.

    Raises:
        ValueError: if the tables do not form one tree (a table with two parents, a cycle,
            a table in no relationship, or no relationship at all), saying which.
    """
    data = metadata_to_dict(metadata)
    tables = list(data['tables'])
    edges = [Edge(rel['parent_table_name'], rel['child_table_name'],
                  rel['parent_primary_key'], rel['child_foreign_key'])
             for rel in data['relationships']]
    if not edges:
        raise ValueError(
            f'the metadata has tables {tables} and no relationship: it needs at least one '
            'parent table with one child table.'
        )
    parents: dict[str, list[str]] = {}
    for edge in edges:
        parents.setdefault(edge.child, []).append(edge.parent)
    several = {child: names for child, names in parents.items() if len(names) > 1}
    if several:
        raise ValueError(
            f'every table must have at most one parent table (a tree); {several} have several.'
        )
    roots = [table for table in tables if table not in parents]
    linked = {edge.parent for edge in edges} | {edge.child for edge in edges}
    loose = [table for table in tables if table not in linked]
    if loose:
        raise ValueError(f'the tables {loose} are in no relationship; every table must be '
                         'part of one tree of parent/child relationships.')
    if len(roots) != 1:
        raise ValueError(
            f'the relationships must form one tree with one root table; roots found: {roots}.'
        )
    ordered: list[Edge] = []
    frontier = [roots[0]]
    while frontier:
        table = frontier.pop(0)
        for edge in edges:
            if edge.parent == table:
                ordered.append(edge)
                frontier.append(edge.child)
    if len(ordered) != len(edges):
        cycle = sorted({edge.child for edge in edges} - {edge.child for edge in ordered})
        raise ValueError(f'the relationships have a cycle through the tables {cycle}.')
    return roots[0], ordered


def _names(expression: str) -> set[str]:
    return set(parse_expression(expression).columns)


def _prune_table(table: TableSpec, excluded: set[str]) -> None:
    """Drop the derived columns in ``excluded`` and every statistic and rule naming one."""
    table.derived_columns = {name: derived for name, derived in table.derived_columns.items()
                             if name not in excluded}
    table.statistics = [statistic for statistic in table.statistics
                        if not set(statistic.columns) & excluded]
    table.rules = [rule for rule in table.rules if not _names(rule.expression) & excluded]


def edge_spec(spec: MacroSpec, edge: Edge) -> MacroSpec:
    """The parent/child spec of one edge, cut from the spec of the whole tree.

    Args:
        spec (MacroSpec):
            The spec of every table.
        edge (Edge):
            The edge.

    Returns:
        MacroSpec:
            Two tables and one relationship (a deep copy: the input is not changed).
    """
    whole = copy.deepcopy(spec)
    parent = whole.tables.get(edge.parent) or TableSpec(name=edge.parent)
    child = whole.tables.get(edge.child) or TableSpec(name=edge.child)
    _prune_table(parent, {name for name, derived in parent.derived_columns.items()
                          if derived.child_table != edge.child})
    _prune_table(child, set(child.derived_columns))
    relationships = [rel for rel in whole.relationships
                     if (rel.parent_table, rel.child_table) == (edge.parent, edge.child)]
    out = MacroSpec({edge.parent: parent, edge.child: child}, relationships,
                    name=whole.name, context=whole.context)
    out._attach_child_counts()
    return out


def untargeted_statistics(spec: MacroSpec) -> list[str]:
    """Statistics no edge can target: they span derived columns of two different children.

    Args:
        spec (MacroSpec):
            The spec of every table.

    Returns:
        list[str]:
            ``'<table>: <statistic>'`` for each.
    """
    out = []
    for table in spec.tables.values():
        for statistic in table.statistics:
            children = {table.derived_columns[column].child_table
                        for column in statistic.columns if column in table.derived_columns}
            if len(children) > 1:
                out.append(f'{table.name}: {statistic.name}')
    return out


def edge_metadata(metadata: Any, edge: Edge) -> dict[str, Any]:
    """SDV metadata (dict) of the two tables of an edge and their relationship.

    The parent's own foreign key (to its parent, one level up) is left out: the edge does not
    synthesise it.

    Args:
        metadata (sdv.metadata.Metadata or dict):
            The metadata of the whole tree.
        edge (Edge):
            The edge.

    Returns:
        dict:
            A metadata dict for ``sdv.metadata.Metadata.load_from_dict``.
    """
    data = metadata.to_dict() if hasattr(metadata, 'to_dict') else dict(metadata)
    data.setdefault('relationships', [])
    tables = copy.deepcopy({name: data['tables'][name] for name in (edge.parent, edge.child)})
    upward = {rel['child_foreign_key'] for rel in data['relationships']
              if rel['child_table_name'] == edge.parent}
    for key in upward:
        tables[edge.parent].get('columns', {}).pop(key, None)
    relationship = {'parent_table_name': edge.parent, 'child_table_name': edge.child,
                    'parent_primary_key': edge.parent_primary_key,
                    'child_foreign_key': edge.child_foreign_key}
    return {'METADATA_SPEC_VERSION': data.get('METADATA_SPEC_VERSION', 'V2'), 'tables': tables,
            'relationships': [relationship]}
