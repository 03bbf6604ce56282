"""The macro-statistics spec: schema, loading, validation, derivation and expressions."""

from sdv_llmsynthor.spec.model import (
    Cell,
    ColumnSpec,
    DerivedColumnSpec,
    MacroSpec,
    RelationshipSpec,
    RuleSpec,
    StatisticSpec,
    TableSpec,
    child_count_column,
)

__all__ = [
    'Cell',
    'ColumnSpec',
    'DerivedColumnSpec',
    'MacroSpec',
    'RelationshipSpec',
    'RuleSpec',
    'StatisticSpec',
    'TableSpec',
    'child_count_column',
]
