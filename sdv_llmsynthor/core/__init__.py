"""The synthesis engine: encoding, aggregation, discrepancy, anchors, sampling, validity,
calibration, checkpoints and the loop. numpy/pandas/scipy only; nothing here imports ``llm/``.
"""

from sdv_llmsynthor.core.aggregate import StatisticCounts, aggregate_frame
from sdv_llmsynthor.core.anchors import Anchor, select_anchors
from sdv_llmsynthor.core.discrepancy import Discrepancy, compute_discrepancy
from sdv_llmsynthor.core.encoding import ColumnEncoder, CompiledStatistic, compile_table
from sdv_llmsynthor.core.loop import SynthesisLoop, SynthesisResult, allocate_counts
from sdv_llmsynthor.core.report import RunReport
from sdv_llmsynthor.core.validity import RejectionTable, ValidityChecker

__all__ = [
    'Anchor',
    'ColumnEncoder',
    'CompiledStatistic',
    'Discrepancy',
    'RejectionTable',
    'RunReport',
    'StatisticCounts',
    'SynthesisLoop',
    'SynthesisResult',
    'ValidityChecker',
    'aggregate_frame',
    'allocate_counts',
    'compile_table',
    'compute_discrepancy',
    'select_anchors',
]
