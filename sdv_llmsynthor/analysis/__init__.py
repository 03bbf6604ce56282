"""The statistical analyzer: per-column and joint diagnostics of synthetic rows against real rows.

SYNTHIA's discriminator reads these diagnostics (papers/004, Appendix D.5); the macro-fidelity
reports of the other synthesizers can show the same ones.
"""

from sdv_llmsynthor.analysis.analyzer import (
    AnalysisReport,
    NearCopyIndex,
    ReferenceProfile,
    StatisticalAnalyzer,
    get_column_kinds,
)

__all__ = [
    'AnalysisReport',
    'NearCopyIndex',
    'ReferenceProfile',
    'StatisticalAnalyzer',
    'get_column_kinds',
]
