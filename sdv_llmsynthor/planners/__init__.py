"""Planners: who proposes records. One interface (``Planner.propose``), several strategies.

The LLM planners (``AnchoredLLMPlanner``, ``FreeLLMPlanner``) are imported on first access
only: the engine imports ``planners.base`` and must not pull in ``llm/`` through this package.
"""

from sdv_llmsynthor.planners.base import (
    HouseholdProposal,
    Planner,
    PlannerState,
    Proposal,
    Range,
    UsageLedger,
)
from sdv_llmsynthor.planners.statistical import StatisticalPlanner

_LAZY = {
    'AnchoredLLMPlanner': 'sdv_llmsynthor.planners.anchored',
    'FreeLLMPlanner': 'sdv_llmsynthor.planners.free',
}

__all__ = [
    'AnchoredLLMPlanner',
    'FreeLLMPlanner',
    'HouseholdProposal',
    'Planner',
    'PlannerState',
    'Proposal',
    'Range',
    'StatisticalPlanner',
    'UsageLedger',
]


def __getattr__(name):
    """Import the LLM planners lazily (see the module docstring)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdv_llmsynthor.planners' has no attribute '{name}'")
