"""Evaluation: paper metrics, the e-commerce Bayesian network, fidelity reports."""

from sdv_llmsynthor.evaluation.ecommerce_bn import (
    add_derived_variables,
    build_ecommerce_metadata,
    sample_ecommerce,
)
from sdv_llmsynthor.evaluation.metrics import (
    METRICS,
    BaseMetric,
    C2STGap,
    DownstreamAccuracy,
    JointTVDistance,
    TVDistance,
    WassersteinDistance,
    c2st_gap,
    downstream_utility,
    joint_tvd,
    per_variable_c2st,
    tvd,
    wasserstein,
)

__all__ = (
    'METRICS',
    'BaseMetric',
    'C2STGap',
    'DownstreamAccuracy',
    'JointTVDistance',
    'TVDistance',
    'WassersteinDistance',
    'add_derived_variables',
    'build_ecommerce_metadata',
    'c2st_gap',
    'downstream_utility',
    'joint_tvd',
    'per_variable_c2st',
    'sample_ecommerce',
    'tvd',
    'wasserstein',
)
