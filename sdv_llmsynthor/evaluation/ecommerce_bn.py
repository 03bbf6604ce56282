"""The e-commerce Bayesian network of the LLMSynthor paper (appendix A.1), exact parameters.

The network has six variables, ``user_age``, ``gender``, ``location_tier``, ``product_category``,
``price`` and ``payment_method``, and factorises as
``p(A) p(G) p(L) p(C | g(A), G) p(X | C) p(M | L)`` where ``g`` maps an age to its group
(young ``< 35``, middle ``[35, 55)``, old ``>= 55``).

Two post-hoc labels, ``discount_propensity`` and ``lifetime_value_band``, are computed from a
table of transactions by :func:`add_derived_variables`, exactly as A.1 defines them; they serve
as targets for the downstream-utility evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import EvaluationError

TABLE_NAME = 'transactions'
"""Name of the single table in the SDV metadata of this dataset."""

COLUMNS = (
    'user_age',
    'gender',
    'location_tier',
    'product_category',
    'price',
    'payment_method',
)
"""The six columns of a transaction, in the order the network draws them."""

AGE_WEIGHTS_AS_PUBLISHED = (0.5, 0.45, 0.15)
"""Age mixture weights as printed in A.1. They sum to 1.1; :data:`AGE_WEIGHTS` normalises them."""

AGE_WEIGHTS = tuple(w / sum(AGE_WEIGHTS_AS_PUBLISHED) for w in AGE_WEIGHTS_AS_PUBLISHED)
AGE_MEANS = (24.0, 38.0, 55.0)
AGE_STDS = (6.0, 15.0, 10.0)
AGE_BOUNDS = (18.0, 90.0)

AGE_GROUP_EDGES = (35.0, 55.0)
"""Young is ``age < 35``, middle ``35 <= age < 55``, old ``age >= 55``."""

AGE_GROUPS = ('Young', 'Middle', 'Old')

GENDERS = ('Male', 'Female')
GENDER_PROBABILITIES = (0.45, 0.55)

LOCATION_TIERS = ('Developed', 'Developing')
LOCATION_PROBABILITIES = (0.4, 0.6)

CATEGORIES = ('Electronics', 'Apparel', 'Food & Beverages', 'Furniture & Appliances')

CATEGORY_PROBABILITIES = {
    ('Young', 'Male'): (0.50, 0.25, 0.05, 0.20),
    ('Young', 'Female'): (0.20, 0.50, 0.05, 0.25),
    ('Middle', 'Male'): (0.20, 0.10, 0.50, 0.20),
    ('Middle', 'Female'): (0.10, 0.20, 0.55, 0.15),
    ('Old', 'Male'): (0.10, 0.10, 0.65, 0.15),
    ('Old', 'Female'): (0.10, 0.10, 0.60, 0.20),
}
"""``p(category | age group, gender)`` from Table 4 of the paper, over :data:`CATEGORIES`."""

PRICE_PARAMETERS = {
    'Electronics': (800.0, 1000.0),
    'Apparel': (100.0, 500.0),
    'Food & Beverages': (100.0, 400.0),
    'Furniture & Appliances': (200.0, 500.0),
}
"""``(mean, standard deviation)`` of the price given the category, before truncation."""

PRICE_BOUNDS = (0.0, 2000.0)

PAYMENT_METHODS = ('Online Payment', 'Cash on Delivery')
PAYMENT_PROBABILITIES = {
    'Developed': (0.70, 0.30),
    'Developing': (0.40, 0.60),
}
"""``p(payment_method | location_tier)`` over :data:`PAYMENT_METHODS`."""

DERIVED_LEVELS = ('Low', 'Mid', 'High')
"""Levels of both derived variables."""

PAYMENT_MULTIPLIERS = {'Online Payment': 1.2, 'Cash on Delivery': 0.85}
CATEGORY_MULTIPLIERS = {
    'Electronics': 1.3,
    'Apparel': 1.1,
    'Food & Beverages': 0.9,
    'Furniture & Appliances': 1.4,
}


def _truncated_normal(rng, means, stds, low, high):
    """Draw one value per entry of ``means``/``stds`` from ``N(mean, std)`` cut to [low, high].

    Rejection sampling: every entry is redrawn until it falls inside the bounds, so each value
    follows its own truncated normal exactly.
    """
    means = np.asarray(means, dtype=float)
    stds = np.asarray(stds, dtype=float)
    values = np.empty(means.shape, dtype=float)
    pending = np.arange(means.size)
    while pending.size:
        draws = rng.normal(means[pending], stds[pending])
        inside = (draws >= low) & (draws <= high)
        values[pending[inside]] = draws[inside]
        pending = pending[~inside]

    return values


def _choice_per_row(rng, probabilities):
    """Draw one index per row of a ``(num_rows, k)`` probability matrix (inverse CDF)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0  # guard against rounding: the last bin always closes the interval
    uniforms = rng.random(probabilities.shape[0])
    return (uniforms[:, None] >= cumulative).sum(axis=1)


def age_group(user_age):
    """Map ages to the network's age groups.

    Args:
        user_age (array-like):
            Ages in years.

    Returns:
        numpy.ndarray:
            One of ``'Young'`` (``< 35``), ``'Middle'`` (``[35, 55)``) or ``'Old'`` (``>= 55``)
            per age, as an object array.
    """
    ages = np.asarray(user_age, dtype=float)
    codes = np.searchsorted(np.asarray(AGE_GROUP_EDGES), ages, side='right')
    return np.asarray(AGE_GROUPS, dtype=object)[codes]


def sample_ecommerce(num_rows, seed=None):
    """Sample transactions from the e-commerce Bayesian network of the paper (appendix A.1).

    The draw is vectorised and fully determined by ``seed``
    (``numpy.random.default_rng(seed)``).

    - ``user_age``: mixture of three normals ``N(24, 6)``, ``N(38, 15)``, ``N(55, 10)``, each
      truncated to [18, 90] by rejection, rounded to 2 decimals. The paper prints the mixture
      weights as (0.5, 0.45, 0.15), which sum to 1.1; they are normalised here to
      (0.4545, 0.4091, 0.1364).
    - ``gender``: Male 0.45, Female 0.55. ``location_tier``: Developed 0.4, Developing 0.6.
    - ``product_category`` given the age group (of the rounded age) and gender: Table 4.
    - ``price`` given the category: ``N(mu_c, sd_c)`` truncated to [0, 2000] by rejection,
      rounded to 2 decimals.
    - ``payment_method`` given the tier: Online Payment / Cash on Delivery with (0.7, 0.3) in
      Developed and (0.4, 0.6) in Developing regions.

    Args:
        num_rows (int):
            Number of transactions to draw.
        seed (int or None):
            Seed of the random generator. Defaults to ``None`` (fresh entropy).

    Returns:
        pandas.DataFrame:
            One row per transaction, with the columns of :data:`COLUMNS`. ``user_age`` and
            ``price`` are floats, the others strings.

    Raises:
        EvaluationError:
            If ``num_rows`` is not a non-negative integer.
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 0:
        raise EvaluationError(
            f"The 'num_rows' parameter must be a non-negative integer. Got {num_rows!r} instead."
        )

    rng = np.random.default_rng(seed)
    num_rows = int(num_rows)

    components = rng.choice(len(AGE_WEIGHTS), size=num_rows, p=AGE_WEIGHTS)
    ages = _truncated_normal(
        rng,
        np.asarray(AGE_MEANS)[components],
        np.asarray(AGE_STDS)[components],
        *AGE_BOUNDS,
    )
    ages = np.round(ages, 2)

    genders = np.asarray(GENDERS, dtype=object)[
        rng.choice(len(GENDERS), size=num_rows, p=GENDER_PROBABILITIES)
    ]
    tiers = np.asarray(LOCATION_TIERS, dtype=object)[
        rng.choice(len(LOCATION_TIERS), size=num_rows, p=LOCATION_PROBABILITIES)
    ]

    groups = age_group(ages)
    category_probabilities = np.empty((num_rows, len(CATEGORIES)))
    for (group, gender), probabilities in CATEGORY_PROBABILITIES.items():
        category_probabilities[(groups == group) & (genders == gender)] = probabilities

    category_codes = _choice_per_row(rng, category_probabilities)
    categories = np.asarray(CATEGORIES, dtype=object)[category_codes]

    price_means = np.array([PRICE_PARAMETERS[c][0] for c in CATEGORIES])[category_codes]
    price_stds = np.array([PRICE_PARAMETERS[c][1] for c in CATEGORIES])[category_codes]
    prices = np.round(_truncated_normal(rng, price_means, price_stds, *PRICE_BOUNDS), 2)

    payment_probabilities = np.empty((num_rows, len(PAYMENT_METHODS)))
    for tier, probabilities in PAYMENT_PROBABILITIES.items():
        payment_probabilities[tiers == tier] = probabilities

    payments = np.asarray(PAYMENT_METHODS, dtype=object)[
        _choice_per_row(rng, payment_probabilities)
    ]

    return pd.DataFrame({
        'user_age': ages,
        'gender': genders,
        'location_tier': tiers,
        'product_category': categories,
        'price': prices,
        'payment_method': payments,
    })


def _check_values(data, column, allowed):
    unknown = sorted(set(data[column].dropna().unique()) - set(allowed), key=str)
    if data[column].isna().any() or unknown:
        shown = unknown + (['<missing>'] if data[column].isna().any() else [])
        raise EvaluationError(
            f"Column '{column}' has values outside the network's categories: {shown}. "
            f'Expected only {list(allowed)}.'
        )


def add_derived_variables(data):
    """Add the paper's ``discount_propensity`` and ``lifetime_value_band`` labels (appendix A.1).

    Discount propensity: with ``z = (price - mu_c) / sd_c`` using the generator's price
    parameters of the row's category,
    ``S = -tanh(z) + 0.01 * (age - 35)**2 / 100 + 0.5 * [COD] + 0.3 * [Developing]``;
    ``High`` if ``S > 1``, ``Low`` if ``S < -1``, else ``Mid``. Since ``-tanh(z) > -1`` and
    the other terms are non-negative, ``S < -1`` never happens: the definition as published
    yields only ``Mid`` and ``High``.

    Lifetime value band: ``l0 = sqrt(price) * w_m / (log(1 + |age - 35|) + 1) * w_c`` (natural
    log) with ``w_m`` 1.2 for online payment and 0.85 for cash on delivery and ``w_c`` 1.3,
    1.1, 0.9, 1.4 for Electronics, Apparel, Food & Beverages, Furniture & Appliances;
    ``High`` if ``l0 > 20``, ``Low`` if ``l0 < 10``, else ``Mid``. A negative price (outside the
    network's support, only a synthesizer can produce one) counts as 0 in the square root.

    Args:
        data (pandas.DataFrame):
            Transactions with at least the columns of :data:`COLUMNS`. Not modified.

    Returns:
        pandas.DataFrame:
            A copy of ``data`` with two more string columns, ``discount_propensity`` and
            ``lifetime_value_band``, each in ``{'Low', 'Mid', 'High'}``.

    Raises:
        EvaluationError:
            If a column is missing, or a categorical column holds a value the network does not
            know (or a missing value), or a numeric column holds a missing value.
    """
    missing = [column for column in COLUMNS if column not in data.columns]
    if missing:
        raise EvaluationError(f'Missing columns for the derived variables: {missing}.')

    _check_values(data, 'product_category', CATEGORIES)
    _check_values(data, 'payment_method', PAYMENT_METHODS)
    _check_values(data, 'location_tier', LOCATION_TIERS)
    for column in ('user_age', 'price'):
        if data[column].isna().any():
            raise EvaluationError(f"Column '{column}' has missing values.")

    age = data['user_age'].to_numpy(dtype=float)
    price = data['price'].to_numpy(dtype=float)
    category = data['product_category'].to_numpy()
    is_cod = (data['payment_method'] == 'Cash on Delivery').to_numpy()
    is_developing = (data['location_tier'] == 'Developing').to_numpy()

    mean = np.array([PRICE_PARAMETERS[c][0] for c in category], dtype=float)
    std = np.array([PRICE_PARAMETERS[c][1] for c in category], dtype=float)
    z_score = (price - mean) / std
    score = (
        -np.tanh(z_score)
        + 0.01 * (age - 35.0) ** 2 / 100.0
        + 0.5 * is_cod
        + 0.3 * is_developing
    )
    discount = np.where(score > 1, 'High', np.where(score < -1, 'Low', 'Mid'))

    payment_weight = np.where(is_cod, PAYMENT_MULTIPLIERS['Cash on Delivery'],
                              PAYMENT_MULTIPLIERS['Online Payment'])
    category_weight = np.array([CATEGORY_MULTIPLIERS[c] for c in category], dtype=float)
    value_score = (
        np.sqrt(np.clip(price, 0.0, None)) * payment_weight
        / (np.log1p(np.abs(age - 35.0)) + 1.0)
        * category_weight
    )
    value_band = np.where(value_score > 20, 'High', np.where(value_score < 10, 'Low', 'Mid'))

    result = data.copy()
    result['discount_propensity'] = discount.astype(object)
    result['lifetime_value_band'] = value_band.astype(object)
    return result


def build_ecommerce_metadata():
    """Build the SDV metadata of the e-commerce transactions table.

    Returns:
        sdv.metadata.Metadata:
            A single table named :data:`TABLE_NAME` with ``user_age`` and ``price`` numerical
            with 2 decimal places, and the four other columns categorical. SDV 2's metadata
            (spec ``V2``) no longer has ``computer_representation`` for numerical columns (it
            warns and drops it), so ``decimal_places`` says they are floats. Ranges are left
            out: SDV warns when the training rows do not reach them. The derived variables are
            not part of it: they are labels computed after synthesis.
    """
    from sdv.metadata import Metadata

    metadata = Metadata()
    metadata.add_table(TABLE_NAME)
    for column in COLUMNS:
        if column in ('user_age', 'price'):
            metadata.add_column(
                column_name=column,
                table_name=TABLE_NAME,
                sdtype='numerical',
                decimal_places=2,
            )
        else:
            metadata.add_column(column_name=column, table_name=TABLE_NAME, sdtype='categorical')

    return metadata
