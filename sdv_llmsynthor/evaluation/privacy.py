"""Fidelity, diversity and privacy metrics as the SYNTHIA paper reports them (papers/004, D.6).

- :func:`alpha_precision_beta_recall`: alpha-precision and beta-recall of Alaa et al. (2022,
  "How faithful is your synthetic data?"), integrated over the alpha and beta levels, plus
  their authenticity score.
- :func:`dcr_share`: the share of synthetic rows closer to the training split than to a
  held-out split (Distance to Closest Record); 0.5 is ideal, 1.0 means copies of training rows.
- :func:`c2st_detection`: the classifier two-sample test of SDMetrics (``LogisticDetection``):
  1 - (2 * ROC AUC - 1) of a logistic regression telling real from synthetic, 1 is best.

The alpha/beta and DCR estimators are written here from the definitions in the cited papers
(no code taken from other projects).

Rows are embedded the same way for every distance: numeric and datetime columns standardised
with the real (or training) mean and standard deviation, categorical columns one-hot encoded on
the real categories (a missing value is a category; a category the real data lacks encodes as
all zeros), id and PII columns dropped. Distances are Euclidean in that space.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.analysis.analyzer import (
    NUMERIC_KINDS,
    _single_table_dict,
    category_key,
    get_column_kinds,
    get_datetime_formats,
    numeric_values,
)
from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.metrics import FunctionMetric

__all__ = [
    'AlphaPrecision',
    'BetaRecall',
    'DetectionScore',
    'RowEmbedder',
    'alpha_precision_beta_recall',
    'c2st_detection',
    'dcr_share',
]


class RowEmbedder:
    """One-hot categorical columns and standardised numeric columns, fitted on real rows.

    Args:
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata of the table; None to infer column kinds from the dtypes.
        table_name (str or None):
            The table, for multi-table metadata.
    """

    def __init__(self, metadata: Any = None, table_name: str | None = None) -> None:
        self.metadata = metadata
        self.table_name = table_name

    def fit(self, real: pd.DataFrame) -> RowEmbedder:
        """Learn the columns, means, standard deviations and categories of the real rows.

        Args:
            real (pandas.DataFrame):
                The real rows.

        Returns:
            RowEmbedder:
                ``self``.
        """
        if len(real) == 0:
            raise EvaluationError('Cannot fit a row embedding on an empty table.')
        kinds = get_column_kinds(real, self.metadata, self.table_name)
        self._formats = get_datetime_formats(self.metadata, self.table_name)
        self._numeric = [c for c, k in kinds.items() if k in NUMERIC_KINDS and c in real]
        self._categorical = [c for c, k in kinds.items() if k == 'categorical' and c in real]
        self._kinds = kinds
        if not self._numeric and not self._categorical:
            raise EvaluationError('The table has no numeric or categorical column to embed.')
        self._center, self._scale = {}, {}
        for column in self._numeric:
            values = numeric_values(real[column], kinds[column], self._formats.get(column))
            mean, std = np.nanmean(values), np.nanstd(values)
            self._center[column] = 0.0 if np.isnan(mean) else float(mean)
            self._scale[column] = float(std) if std > 0 else 1.0
        self._categories = {
            column: {key: i for i, key in enumerate(pd.unique(real[column].map(category_key)))}
            for column in self._categorical
        }
        return self

    def transform(self, data: pd.DataFrame) -> np.ndarray:
        """Embed rows as a float matrix.

        Args:
            data (pandas.DataFrame):
                Rows with the fitted columns.

        Returns:
            numpy.ndarray:
                One row per input row.
        """
        missing = [c for c in self._numeric + self._categorical if c not in data.columns]
        if missing:
            raise EvaluationError(f'Columns {missing} are missing from the data to embed.')
        blocks = []
        for column in self._numeric:
            values = numeric_values(data[column], self._kinds[column], self._formats.get(column))
            scaled = (values - self._center[column]) / self._scale[column]
            blocks.append(np.nan_to_num(scaled, nan=0.0)[:, None])
        for column in self._categorical:
            mapping = self._categories[column]
            codes = data[column].map(category_key).map(lambda k, m=mapping: m.get(k, -1))
            codes = codes.to_numpy(dtype=int)
            one_hot = np.zeros((len(data), len(mapping)))
            known = codes >= 0
            one_hot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(one_hot)
        return np.hstack(blocks) if blocks else np.zeros((len(data), 0))


def _check_rows(**tables: pd.DataFrame) -> None:
    for name, table in tables.items():
        if table is None or len(table) == 0:
            raise EvaluationError(f'The {name} data is empty: the metric needs rows.')


def _subsample(data: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(data) <= size:
        return data
    return data.iloc[np.sort(rng.choice(len(data), size=size, replace=False))]


def _nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1
             ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    index = NearestNeighbors(n_neighbors=k, algorithm='auto').fit(reference)
    distances, indices = index.kneighbors(queries, n_neighbors=k)
    return distances, indices


def alpha_precision_beta_recall(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: Any = None,
    table_name: str | None = None,
    num_levels: int = 30,
    balance: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Integrated alpha-precision, beta-recall and authenticity (Alaa et al., 2022).

    Rows are embedded (see :class:`RowEmbedder`) and the supports are balls, as in the
    paper's evaluation of tabular data without a learned one-class embedding:

    - the **alpha-support** of the real data is the ball around the real mean whose radius is
      the alpha-quantile of the real rows' distances to that mean; ``P_alpha`` is the share of
      synthetic rows inside it. A faithful generator has ``P_alpha = alpha`` at every level.
    - the **beta-support** of the synthetic data is the ball around the synthetic mean whose
      radius is the beta-quantile of the synthetic rows' distances to it; ``R_beta`` is the
      share of real rows whose nearest synthetic row lies in that support *and* closer to the
      real row than the real row's nearest other real row (its k=1 neighbourhood).
    - the integrated scores are ``1 - sum|P_alpha - alpha| / sum(alpha)`` (and likewise for
      ``R_beta``) over ``num_levels`` levels evenly spaced in [0, 1].
    - authenticity is the share of synthetic rows farther from their nearest real row than that
      real row is from its own nearest other real row.

    With this estimator alpha-precision is about 1 for a perfect generator, and beta-recall
    about 0.5 (a real row's nearest synthetic row beats its nearest real neighbour about half
    of the time when both samples have the same size and distribution). That is the scale of
    the papers' tables (SYNTHIA on Adult: alpha 99.0, beta 51.6). Beta-recall depends on the
    sample sizes, so by default the larger table is subsampled to the size of the smaller.

    Args:
        real (pandas.DataFrame):
            Real rows.
        synthetic (pandas.DataFrame):
            Synthetic rows.
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata; None to infer column kinds from the dtypes.
        table_name (str or None):
            The table, for multi-table metadata.
        num_levels (int):
            Alpha and beta levels in [0, 1]. Defaults to 30.
        balance (bool):
            Subsample the larger table to the size of the smaller. Defaults to True.
        seed (int):
            Seed of the subsampling. Defaults to 0.

    Returns:
        dict:
            ``alpha_precision``, ``beta_recall``, ``authenticity`` (floats in [0, 1]), the
            ``levels`` and the ``precision_curve`` and ``recall_curve`` (lists), and the row
            counts ``num_real_rows`` and ``num_synthetic_rows`` used.

    Raises:
        EvaluationError:
            If a table is empty or has fewer than 2 rows.
    """
    _check_rows(real=real, synthetic=synthetic)
    if balance:
        rng = np.random.default_rng(seed)
        size = min(len(real), len(synthetic))
        real, synthetic = _subsample(real, size, rng), _subsample(synthetic, size, rng)
    if len(real) < 2 or len(synthetic) < 2:
        raise EvaluationError(
            f'alpha-precision and beta-recall need at least 2 rows in each table. Got '
            f'{len(real)} real and {len(synthetic)} synthetic rows.'
        )

    embedder = RowEmbedder(metadata, table_name).fit(real)
    real_matrix, synthetic_matrix = embedder.transform(real), embedder.transform(synthetic)
    levels = np.linspace(0.0, 1.0, num_levels)

    real_center = real_matrix.mean(axis=0)
    real_radii = np.quantile(np.linalg.norm(real_matrix - real_center, axis=1), levels)
    synthetic_to_real_center = np.linalg.norm(synthetic_matrix - real_center, axis=1)
    precision_curve = np.array([np.mean(synthetic_to_real_center <= r) for r in real_radii])

    synthetic_center = synthetic_matrix.mean(axis=0)
    synthetic_to_own_center = np.linalg.norm(synthetic_matrix - synthetic_center, axis=1)
    synthetic_radii = np.quantile(synthetic_to_own_center, levels)
    real_to_real, _ = _nearest(real_matrix, real_matrix, k=2)
    real_neighbour = real_to_real[:, 1]
    real_to_synthetic, nearest_synthetic = _nearest(synthetic_matrix, real_matrix, k=1)
    real_to_synthetic, nearest_synthetic = real_to_synthetic[:, 0], nearest_synthetic[:, 0]
    within_neighbourhood = real_to_synthetic <= real_neighbour
    nearest_synthetic_radius = synthetic_to_own_center[nearest_synthetic]
    recall_curve = np.array([
        np.mean(within_neighbourhood & (nearest_synthetic_radius <= r)) for r in synthetic_radii
    ])

    synthetic_to_real, nearest_real = _nearest(real_matrix, synthetic_matrix, k=1)
    authenticity = float(np.mean(synthetic_to_real[:, 0] > real_neighbour[nearest_real[:, 0]]))

    total = levels.sum()
    return {
        'alpha_precision': float(1.0 - np.abs(precision_curve - levels).sum() / total),
        'beta_recall': float(1.0 - np.abs(recall_curve - levels).sum() / total),
        'authenticity': authenticity,
        'levels': levels.tolist(),
        'precision_curve': precision_curve.tolist(),
        'recall_curve': recall_curve.tolist(),
        'num_real_rows': len(real),
        'num_synthetic_rows': len(synthetic),
    }


def dcr_share(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: Any = None,
    table_name: str | None = None,
    balance: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Share of synthetic rows whose closest record is in the training split (DCR).

    Every synthetic row is compared with its nearest training row and its nearest held-out
    row; the score is the share that is strictly closer to the training split, ties counting
    one half. A generator that does not memorise scores about 0.5; one that copies training
    rows scores 1.0. The splits must have the same size for 0.5 to be the reference, so by
    default the larger one is subsampled (seeded) to the size of the smaller.

    Args:
        train (pandas.DataFrame):
            The rows the generator was trained on.
        holdout (pandas.DataFrame):
            Real rows it never saw.
        synthetic (pandas.DataFrame):
            Synthetic rows.
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata; None to infer column kinds from the dtypes.
        table_name (str or None):
            The table, for multi-table metadata.
        balance (bool):
            Subsample the larger split to the size of the smaller. Defaults to True.
        seed (int):
            Seed of the subsampling. Defaults to 0.

    Returns:
        dict:
            ``dcr_share`` (float in [0, 1]), ``median_dcr_train`` and ``median_dcr_holdout``
            (median distances), ``num_exact_train_copies`` (synthetic rows at distance 0 from a
            training row) and ``num_train_rows``, ``num_holdout_rows`` used.

    Raises:
        EvaluationError:
            If a table is empty.
    """
    _check_rows(train=train, holdout=holdout, synthetic=synthetic)
    if balance:
        rng = np.random.default_rng(seed)
        size = min(len(train), len(holdout))
        train, holdout = _subsample(train, size, rng), _subsample(holdout, size, rng)

    embedder = RowEmbedder(metadata, table_name).fit(train)
    synthetic_matrix = embedder.transform(synthetic)
    to_train = _nearest(embedder.transform(train), synthetic_matrix)[0][:, 0]
    to_holdout = _nearest(embedder.transform(holdout), synthetic_matrix)[0][:, 0]
    tolerance = 1e-9
    closer = (to_train < to_holdout - tolerance).astype(float)
    ties = np.abs(to_train - to_holdout) <= tolerance
    closer[ties] = 0.5
    return {
        'dcr_share': float(closer.mean()),
        'median_dcr_train': float(np.median(to_train)),
        'median_dcr_holdout': float(np.median(to_holdout)),
        'num_exact_train_copies': int(np.sum(to_train <= tolerance)),
        'num_train_rows': len(train),
        'num_holdout_rows': len(holdout),
    }


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
    """Seed numpy's global generator (SDMetrics' fold split uses it) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def c2st_detection(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: Any = None,
    table_name: str | None = None,
    max_real_rows: int | None = None,
    seed: int = 0,
) -> float:
    """SDMetrics' logistic-regression detection score (C2ST), 1 when real and synthetic mix.

    ``sdmetrics.single_table.LogisticDetection`` trains a logistic regression to tell real
    from synthetic rows (3-fold cross-validation) and returns ``1 - (2 * max(AUC, 0.5) - 1)``.
    ROC AUC does not depend on the class balance, so the tables need not have the same size.
    SDMetrics fits its encoders on the real table, which must therefore hold every category the
    synthetic rows use: the real rows are used in full unless ``max_real_rows`` asks for a
    (seeded) subsample. The fold split is made reproducible by seeding numpy's global generator
    for the call (and restoring it).

    Args:
        real (pandas.DataFrame):
            Real rows.
        synthetic (pandas.DataFrame):
            Synthetic rows.
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata (id and PII columns are dropped by SDMetrics); None to let SDMetrics
            infer the types.
        table_name (str or None):
            The table, for multi-table metadata.
        max_real_rows (int or None):
            Subsample the real rows to this many. None uses them all.
        seed (int):
            Seed of the subsampling and of the fold split. Defaults to 0.

    Returns:
        float:
            The detection score in [0, 1], higher is better.

    Raises:
        EvaluationError:
            If a table is empty or the classifier cannot be fitted (for example a synthetic
            category absent from the real rows).
    """
    from sdmetrics.errors import IncomputableMetricError
    from sdmetrics.single_table import LogisticDetection

    _check_rows(real=real, synthetic=synthetic)
    if max_real_rows is not None:
        real = _subsample(real, max_real_rows, np.random.default_rng(seed))
    table_metadata = None if metadata is None else _single_table_dict(metadata, table_name)
    columns = list(real.columns)
    if table_metadata is not None:
        columns = [c for c in columns if c in table_metadata.get('columns', {})]
        table_metadata = {
            **table_metadata,
            'columns': {c: table_metadata['columns'][c] for c in columns},
        }
    try:
        with _seeded_global_numpy(seed):
            score = LogisticDetection.compute(
                real[columns].reset_index(drop=True),
                synthetic[columns].reset_index(drop=True),
                table_metadata,
            )
    except (IncomputableMetricError, ValueError) as error:
        raise EvaluationError(f'The C2ST detection score could not be computed: {error}') from error
    return float(score)


class _ScoreInUnitInterval(FunctionMetric):
    """A metric in [0, 1] for which higher is better."""

    goal = 'maximize'
    min_value = 0.0
    max_value = 1.0


class AlphaPrecision(_ScoreInUnitInterval):
    """Integrated alpha-precision (see :func:`alpha_precision_beta_recall`); 1 is best."""

    name = 'Alpha Precision'
    function = staticmethod(alpha_precision_beta_recall)
    result_key = 'alpha_precision'


class BetaRecall(_ScoreInUnitInterval):
    """Integrated beta-recall (see :func:`alpha_precision_beta_recall`); about 0.5 is ideal.

    Higher is better up to the ceiling of the estimator (about 0.5 for a perfect generator at
    equal sample sizes).
    """

    name = 'Beta Recall'
    function = staticmethod(alpha_precision_beta_recall)
    result_key = 'beta_recall'


class DetectionScore(_ScoreInUnitInterval):
    """SDMetrics' logistic detection score (see :func:`c2st_detection`); 1 is best.

    The DCR share has no class here: its ideal is 0.5, neither a minimum nor a maximum.
    """

    name = 'Logistic Detection (C2ST)'
    function = staticmethod(c2st_detection)
