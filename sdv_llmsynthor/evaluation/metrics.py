"""Fidelity and utility metrics comparing real and synthetic tables, as the LLMSynthor paper does.

Each metric exists as a plain function (``tvd``, ``wasserstein``, ``joint_tvd``, ``c2st_gap``,
``per_variable_c2st``, ``downstream_utility``) and as a small SDMetrics-style class that declares
its ``name``, ``goal`` (``'minimize'`` or ``'maximize'``) and range (``min_value``,
``max_value``), so reports can be assembled from :data:`METRICS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from sdv_llmsynthor.errors import EvaluationError

_MISSING = '<missing>'
DEFAULT_NUM_QUANTILE_BINS = 6
"""Quantile bins per numeric column when none are given (the paper's main bins)."""


def _is_numeric(series):
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _check_not_empty(real, synthetic, what):
    if len(real) == 0 or len(synthetic) == 0:
        raise EvaluationError(
            f'Cannot compute {what} on empty data: got {len(real)} real and '
            f'{len(synthetic)} synthetic values.'
        )


def _check_columns(real_data, synthetic_data, columns):
    for name, frame in (('real', real_data), ('synthetic', synthetic_data)):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise EvaluationError(f'Columns {missing} are missing from the {name} data.')


def _frequencies(values):
    """Relative frequencies of a series or frame, missing values counted as their own category."""
    values = values.astype(object).where(values.notna(), _MISSING)
    return values.value_counts(normalize=True)


def _tvd_of_frequencies(real_frequencies, synthetic_frequencies):
    index = real_frequencies.index.union(synthetic_frequencies.index)
    real_aligned = real_frequencies.reindex(index, fill_value=0.0)
    synthetic_aligned = synthetic_frequencies.reindex(index, fill_value=0.0)
    return float(0.5 * np.abs(real_aligned - synthetic_aligned).sum())


def tvd(real, synthetic):
    """Total variation distance between the category frequencies of two columns.

    ``TVD = 0.5 * sum_k |p_k - q_k|`` over the union of the categories seen in either column;
    missing values count as a category of their own.

    Args:
        real (pandas.Series or array-like):
            The real column.
        synthetic (pandas.Series or array-like):
            The synthetic column.

    Returns:
        float:
            The distance, 0 for identical frequencies, 1 for disjoint supports.

    Raises:
        EvaluationError:
            If either column is empty.
    """
    real = pd.Series(real)
    synthetic = pd.Series(synthetic)
    _check_not_empty(real, synthetic, 'the total variation distance')
    return _tvd_of_frequencies(_frequencies(real), _frequencies(synthetic))


def wasserstein(real, synthetic):
    """First Wasserstein distance between two numeric samples (``scipy.stats``).

    Missing values are dropped.

    Args:
        real (pandas.Series or array-like):
            The real values.
        synthetic (pandas.Series or array-like):
            The synthetic values.

    Returns:
        float:
            The distance, in the unit of the column (0 for identical samples).

    Raises:
        EvaluationError:
            If either sample has no non-missing value.
    """
    real = pd.to_numeric(pd.Series(real), errors='raise').dropna()
    synthetic = pd.to_numeric(pd.Series(synthetic), errors='raise').dropna()
    _check_not_empty(real, synthetic, 'the Wasserstein distance')
    return float(wasserstein_distance(real.to_numpy(float), synthetic.to_numpy(float)))


def quantile_edges(values, num_bins=DEFAULT_NUM_QUANTILE_BINS):
    """Bin edges at the quantiles of ``values`` (duplicates removed).

    Args:
        values (array-like):
            Numeric values, typically the real column.
        num_bins (int):
            Number of bins wanted. Fewer are returned when quantiles coincide.

    Returns:
        numpy.ndarray:
            Increasing edges, from the minimum to the maximum of ``values``.
    """
    values = pd.to_numeric(pd.Series(values)).dropna().to_numpy(float)
    if values.size == 0:
        raise EvaluationError('Cannot compute quantile edges of an empty column.')

    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, num_bins + 1)))


def bin_codes(values, edges):
    """Assign numeric values to left-closed bins ``[e_i, e_{i+1})``.

    Values below the first edge fall into the first bin and values at or above the last edge
    into the last bin, so the outer bins are open-ended and a synthetic value outside the real
    range still counts. Missing values get code -1.

    Args:
        values (array-like):
            Numeric values.
        edges (array-like):
            Increasing edges (at least two).

    Returns:
        numpy.ndarray:
            Integer bin codes in ``0 .. len(edges) - 2`` (-1 for missing values).
    """
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise EvaluationError(
            f'Bin edges must be at least two strictly increasing numbers. Got {edges.tolist()}.'
        )

    values = pd.to_numeric(pd.Series(values)).to_numpy(float)
    codes = np.searchsorted(edges[1:-1], values, side='right')
    return np.where(np.isnan(values), -1, codes)


def joint_tvd(real_data, synthetic_data, columns, bins=None):
    """Total variation distance between the joint (contingency) frequencies of several columns.

    Numeric columns are binned first: by the edges given in ``bins`` (a list of edges, or an
    integer number of quantile bins), else by :data:`DEFAULT_NUM_QUANTILE_BINS` quantiles of
    the real column. Bins are left-closed with open-ended outer bins (see :func:`bin_codes`).
    Categorical columns are used as they are.

    Args:
        real_data (pandas.DataFrame):
            The real table.
        synthetic_data (pandas.DataFrame):
            The synthetic table.
        columns (list[str]):
            The columns whose joint distribution is compared.
        bins (dict[str, list[float] or int] or None):
            Per numeric column, its bin edges or a number of quantile bins. Columns not listed
            use quantile bins of the real data. Defaults to ``None``.

    Returns:
        float:
            The distance over the union of the cells seen in either table, in [0, 1].

    Raises:
        EvaluationError:
            If a column is missing, a table is empty or the edges are invalid.
    """
    columns = list(columns)
    bins = dict(bins or {})
    if not columns:
        raise EvaluationError('joint_tvd needs at least one column.')

    _check_columns(real_data, synthetic_data, columns)
    _check_not_empty(real_data, synthetic_data, 'the joint total variation distance')
    real_cells = pd.DataFrame(index=range(len(real_data)))
    synthetic_cells = pd.DataFrame(index=range(len(synthetic_data)))
    for column in columns:
        real_column = real_data[column].reset_index(drop=True)
        synthetic_column = synthetic_data[column].reset_index(drop=True)
        if _is_numeric(real_column) or column in bins:
            edges = bins.get(column, DEFAULT_NUM_QUANTILE_BINS)
            if np.isscalar(edges):
                edges = quantile_edges(real_column, int(edges))
                if edges.size < 2:  # a constant column: one bin
                    edges = np.array([edges[0], edges[0] + 1.0])

            real_cells[column] = bin_codes(real_column, edges)
            synthetic_cells[column] = bin_codes(synthetic_column, edges)
        else:
            real_cells[column] = real_column.to_numpy()
            synthetic_cells[column] = synthetic_column.to_numpy()

    return _tvd_of_frequencies(_frequencies(real_cells), _frequencies(synthetic_cells))


def _make_classifier(classifier, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if classifier == 'logistic':
        return LogisticRegression(max_iter=1000)
    if classifier == 'gradient_boosting':
        return HistGradientBoostingClassifier(random_state=seed)

    raise EvaluationError(
        "The 'classifier' parameter must be 'logistic' or 'gradient_boosting'. "
        f'Got {classifier!r} instead.'
    )


def _preprocessor(data):
    """One-hot encode the categorical columns and standardise the numeric ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [column for column in data.columns if _is_numeric(data[column])]
    categorical = [column for column in data.columns if column not in numeric]
    transformers = []
    if numeric:
        transformers.append(('numeric', StandardScaler(), numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown='ignore', sparse_output=False)
        transformers.append(('categorical', encoder, categorical))

    return ColumnTransformer(transformers)


def _as_model_input(data):
    """Categorical columns as strings (missing as a category), numeric columns as floats."""
    data = data.copy()
    for column in data.columns:
        if _is_numeric(data[column]):
            data[column] = data[column].astype(float).fillna(data[column].median())
        else:
            data[column] = data[column].astype(object).where(data[column].notna(), _MISSING)
            data[column] = data[column].astype(str)

    return data


def c2st_gap(real_data, synthetic_data, columns=None, seed=0, classifier='gradient_boosting',
             num_folds=5):
    """Classifier two-sample test gap ``|accuracy - 0.5|`` between real and synthetic rows.

    A classifier learns to tell real rows (label 1) from synthetic rows (label 0); its accuracy
    is estimated by stratified ``num_folds``-fold cross-validation. The larger table is first
    subsampled (seeded) to the size of the smaller, so chance accuracy is 0.5. Categorical
    columns are one-hot encoded and numeric columns standardised, inside each fold.

    Below-chance accuracy also counts as a gap. It happens when synthetic rows are exact
    copies of real rows with distinct values: a copy in the training folds teaches the opposite
    label of its twin in the test fold. A large gap on a continuous column can thus mean
    memorisation rather than a wrong distribution.

    Args:
        real_data (pandas.DataFrame):
            The real table.
        synthetic_data (pandas.DataFrame):
            The synthetic table.
        columns (list[str] or None):
            Columns given to the classifier. Defaults to every column of ``real_data``.
        seed (int):
            Seed of the subsampling, the fold split and the classifier. Defaults to 0.
        classifier (str):
            ``'gradient_boosting'`` (scikit-learn's ``HistGradientBoostingClassifier``, which
            also sees non-linear differences and interactions) or ``'logistic'``
            (``LogisticRegression``). Defaults to ``'gradient_boosting'``.
        num_folds (int):
            Number of cross-validation folds. Defaults to 5.

    Returns:
        float:
            The gap in [0, 0.5]: about 0 when the classifier cannot tell the tables apart,
            0.5 when it separates them perfectly.

    Raises:
        EvaluationError:
            If a column is missing, a table has fewer rows than ``num_folds`` or the classifier
            name is unknown.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    columns = list(real_data.columns) if columns is None else list(columns)
    _check_columns(real_data, synthetic_data, columns)
    size = min(len(real_data), len(synthetic_data))
    if size < num_folds:
        raise EvaluationError(
            f'c2st_gap needs at least {num_folds} rows in each table. '
            f'Got {len(real_data)} real and {len(synthetic_data)} synthetic rows.'
        )

    rng = np.random.default_rng(seed)
    real_rows = real_data[columns].iloc[rng.permutation(len(real_data))[:size]]
    synthetic_rows = synthetic_data[columns].iloc[rng.permutation(len(synthetic_data))[:size]]
    features = _as_model_input(pd.concat([real_rows, synthetic_rows], ignore_index=True))
    labels = np.r_[np.ones(size, dtype=int), np.zeros(size, dtype=int)]

    model = make_pipeline(_preprocessor(features), _make_classifier(classifier, seed))
    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    accuracy = cross_val_score(model, features, labels, cv=folds, scoring='accuracy').mean()
    return float(abs(accuracy - 0.5))


def per_variable_c2st(real_data, synthetic_data, columns=None, seed=0,
                      classifier='gradient_boosting', num_folds=5):
    """C2ST gap of one classifier per variable, as the paper's Table 1 reports.

    Args:
        real_data (pandas.DataFrame):
            The real table.
        synthetic_data (pandas.DataFrame):
            The synthetic table.
        columns (list[str] or None):
            The variables to test. Defaults to every column of ``real_data``.
        seed (int):
            Seed passed to :func:`c2st_gap`. Defaults to 0.
        classifier (str):
            See :func:`c2st_gap`. Defaults to ``'gradient_boosting'``.
        num_folds (int):
            Number of cross-validation folds. Defaults to 5.

    Returns:
        dict[str, float]:
            The gap of each column.
    """
    columns = list(real_data.columns) if columns is None else list(columns)
    return {
        column: c2st_gap(real_data, synthetic_data, [column], seed=seed, classifier=classifier,
                         num_folds=num_folds)
        for column in columns
    }


class _ConstantClassifier:
    """Predicts the only class of its training data (other models refuse a single class)."""

    def fit(self, features, labels):
        self.label_ = pd.Series(labels).iloc[0]
        return self

    def predict(self, features):
        return np.full(len(features), self.label_, dtype=object)


DOWNSTREAM_MODELS = ('logistic_regression', 'decision_tree', 'random_forest')
"""The classifiers of :func:`downstream_utility`, as the paper uses them."""


def _make_downstream_model(name, seed):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    if name == 'logistic_regression':
        return LogisticRegression(max_iter=2000)
    if name == 'decision_tree':
        return DecisionTreeClassifier(random_state=seed)

    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)


def downstream_utility(train_synthetic, test_real, target, features, seed=0, models=None):
    """Train classifiers on synthetic rows and score them on real rows (train synthetic, test real).

    Categorical features are one-hot encoded and numeric features standardised (fitted on the
    training rows). When the synthetic rows hold a single class of ``target``, every model
    predicts that class.

    Args:
        train_synthetic (pandas.DataFrame):
            The (synthetic) training rows, with ``features`` and ``target``.
        test_real (pandas.DataFrame):
            The (real) test rows, with ``features`` and ``target``.
        target (str):
            The column to predict.
        features (list[str]):
            The predictor columns.
        seed (int):
            Seed of the tree models. Defaults to 0.
        models (list[str] or None):
            A subset of :data:`DOWNSTREAM_MODELS`. Defaults to all of them.

    Returns:
        dict[str, dict[str, float]]:
            Per model, ``{'accuracy': ..., 'macro_f1': ...}`` on the test rows. Macro F1 averages
            over the classes present in the test labels or the predictions.

    Raises:
        EvaluationError:
            If a column is missing, a table is empty or a model name is unknown.
    """
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    features = list(features)
    models = list(DOWNSTREAM_MODELS if models is None else models)
    unknown = [name for name in models if name not in DOWNSTREAM_MODELS]
    if unknown:
        raise EvaluationError(
            f'Unknown downstream models {unknown}. Expected a subset of {list(DOWNSTREAM_MODELS)}.'
        )

    _check_columns(test_real, train_synthetic, features + [target])
    _check_not_empty(test_real, train_synthetic, 'the downstream utility')
    train_features = _as_model_input(train_synthetic[features].reset_index(drop=True))
    test_features = _as_model_input(test_real[features].reset_index(drop=True))
    train_labels = train_synthetic[target].astype(str).to_numpy()
    test_labels = test_real[target].astype(str).to_numpy()

    results = {}
    for name in models:
        if np.unique(train_labels).size < 2:
            model = _ConstantClassifier()
        else:
            model = make_pipeline(_preprocessor(train_features), _make_downstream_model(name, seed))

        predictions = np.asarray(model.fit(train_features, train_labels).predict(test_features))
        results[name] = {
            'accuracy': float(accuracy_score(test_labels, predictions.astype(str))),
            'macro_f1': float(f1_score(test_labels, predictions.astype(str), average='macro')),
        }

    return results


class BaseMetric:
    """A metric that declares how to read it, in the manner of SDMetrics.

    Attributes:
        name (str):
            Human-readable name.
        goal (str):
            ``'minimize'`` if lower is better, ``'maximize'`` if higher is better.
        min_value (float):
            Smallest possible value.
        max_value (float):
            Largest possible value (``inf`` when unbounded).
    """

    name = None
    goal = None
    min_value = None
    max_value = None

    @classmethod
    def compute(cls, real_data, synthetic_data, **kwargs):
        """Compute the metric on real and synthetic data.

        Args:
            real_data:
                The real column or table.
            synthetic_data:
                The synthetic column or table.
            **kwargs:
                Metric-specific options.

        Returns:
            float:
                The raw metric value.
        """
        raise NotImplementedError()

    @classmethod
    def normalize(cls, raw_score):
        """Map a raw value to [0, 1] with 1 always best, as SDMetrics does.

        Args:
            raw_score (float):
                A value returned by :meth:`compute`.

        Returns:
            float:
                The normalised score.
        """
        low, high = cls.min_value, cls.max_value
        if np.isinf(high):
            score = 1.0 / (1.0 + raw_score - low) if cls.goal == 'minimize' else np.nan
            return float(score)

        fraction = (raw_score - low) / (high - low)
        return float(1.0 - fraction if cls.goal == 'minimize' else fraction)


class FunctionMetric(BaseMetric):
    """A metric computed by one function of ``(real_data, synthetic_data, **options)``.

    Subclasses set ``function`` (wrapped in ``staticmethod``) and, when the function returns a
    dict, ``result_key``: the entry that is the metric's value.

    Attributes:
        function (callable):
            ``function(real_data, synthetic_data, **kwargs)``.
        result_key (str or None):
            The entry of the function's dict result to return; None returns the result.
    """

    function = None
    result_key = None

    @classmethod
    def compute(cls, real_data, synthetic_data, **kwargs):
        """Return ``function(real_data, synthetic_data, **kwargs)`` (its ``result_key`` entry)."""
        result = cls.function(real_data, synthetic_data, **kwargs)
        return result if cls.result_key is None else result[cls.result_key]


class TVDistance(BaseMetric):
    """Total variation distance between the categories of a column (see :func:`tvd`)."""

    name = 'Total Variation Distance'
    goal = 'minimize'
    min_value = 0.0
    max_value = 1.0

    @classmethod
    def compute(cls, real_data, synthetic_data, **kwargs):
        """Compute :func:`tvd`."""
        return tvd(real_data, synthetic_data)


class WassersteinDistance(BaseMetric):
    """First Wasserstein distance between numeric columns (see :func:`wasserstein`)."""

    name = 'Wasserstein Distance'
    goal = 'minimize'
    min_value = 0.0
    max_value = float('inf')

    @classmethod
    def compute(cls, real_data, synthetic_data, **kwargs):
        """Compute :func:`wasserstein`."""
        return wasserstein(real_data, synthetic_data)


class JointTVDistance(BaseMetric):
    """Total variation distance between contingency tables (see :func:`joint_tvd`)."""

    name = 'Joint Total Variation Distance'
    goal = 'minimize'
    min_value = 0.0
    max_value = 1.0

    @classmethod
    def compute(cls, real_data, synthetic_data, columns=None, bins=None, **kwargs):
        """Compute :func:`joint_tvd` (``columns`` defaults to every real column)."""
        columns = list(real_data.columns) if columns is None else columns
        return joint_tvd(real_data, synthetic_data, columns, bins=bins)


class C2STGap(FunctionMetric):
    """Classifier two-sample test gap ``|accuracy - 0.5|`` (see :func:`c2st_gap`)."""

    name = 'C2ST Gap'
    goal = 'minimize'
    min_value = 0.0
    max_value = 0.5
    function = staticmethod(c2st_gap)


class DownstreamAccuracy(BaseMetric):
    """Accuracy on real rows of a classifier trained on synthetic rows.

    ``compute`` returns the mean accuracy over the models of :func:`downstream_utility`.
    """

    name = 'Downstream Accuracy'
    goal = 'maximize'
    min_value = 0.0
    max_value = 1.0

    @classmethod
    def compute(cls, real_data, synthetic_data, target=None, features=None, seed=0, **kwargs):
        """Compute :func:`downstream_utility` and average the accuracies over its models."""
        if target is None or features is None:
            raise EvaluationError("DownstreamAccuracy needs the 'target' and 'features' options.")

        results = downstream_utility(synthetic_data, real_data, target, features, seed=seed)
        return float(np.mean([scores['accuracy'] for scores in results.values()]))


METRICS = {
    metric.name: metric
    for metric in (TVDistance, WassersteinDistance, JointTVDistance, C2STGap, DownstreamAccuracy)
}
"""Every metric class, by name."""
