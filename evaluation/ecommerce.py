"""E-commerce transactions experiment (LLMSynthor paper: Table 1, Figures 4 and 13, appendix A.1).

For each seed ``s``: 2,000 reference rows are drawn from the paper's Bayesian network (seed
``s``) and a separate 2,000-row real test set (seed ``s + 1000``). Every method in the registry
receives the reference rows and returns as many synthetic rows; the synthetic rows are compared
with the reference rows (per-variable Wasserstein/TVD and C2ST gap, joint TVDs of the network's
dependencies, a whole-row C2ST gap) and used to train classifiers of the two derived labels,
scored on the real test set.

The LLMSynthor methods never see the rows: each derives a spec from the reference rows
(``MacroSpec.from_data``, as ``specs/examples/ecommerce.json`` was made) and fits
``LLMSynthorSynthesizer`` on the spec alone. Two specs make the ablation of the paper's
Figure 13: *marginals* (the six marginals) and *marginals + joints* (plus the network's
dependencies category x age x gender, price x category, payment x tier).

Run from the repository root::

    python -m evaluation.ecommerce --quick          # minutes: the CI smoke test
    python -m evaluation.ecommerce --methods sdv stat-m stat-mj       # no embedded LLM
    python -m evaluation.ecommerce --methods anchored-mj free-mj --seeds 0 --merge
    python -m evaluation.ecommerce --render         # re-render tables and plots from the JSON

``--methods`` takes display names or the short keys of :data:`METHOD_KEYS`; ``--merge`` replaces
the stored results of the (method, seed) pairs just run and keeps every other stored result, so
slow methods can be re-run alone.

Other methods plug in through :func:`register_method` (or by adding to :data:`METHODS` and
:data:`QUICK_METHODS`): a method is a callable ``(reference_rows, metadata, seed) ->
(synthetic_rows, info)``; ``info`` may carry ``fit_seconds``, ``sample_seconds``, ``llm_calls``,
``prompt_tokens``, ``completion_tokens``, ``tokens`` and ``convergence``; a method that cannot
run returns ``(None, {'status': 'not run (reason)'})``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sdv_llmsynthor.evaluation.ecommerce_bn import (
    AGE_BOUNDS,
    AGE_GROUP_EDGES,
    CATEGORIES,
    COLUMNS,
    GENDERS,
    LOCATION_TIERS,
    PAYMENT_METHODS,
    TABLE_NAME,
    add_derived_variables,
    sample_ecommerce,
)
from sdv_llmsynthor.evaluation.metrics import (
    DOWNSTREAM_MODELS,
    c2st_gap,
    downstream_utility,
    joint_tvd,
    per_variable_c2st,
    tvd,
    wasserstein,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
METADATA_PATH = REPOSITORY_ROOT / 'metadata' / 'ecommerce.json'
DEFAULT_OUTPUT = Path('evaluation') / 'results'

NUM_ROWS = 2000
TEST_SEED_OFFSET = 1000
REFERENCE_DRAW_SEED_OFFSET = 2000
FULL_EPOCHS = {'CTGAN': 150, 'TVAE': 300, 'CopulaGAN': 150}
"""Training epochs of the full run. SDV's default is 300; CTGAN and CopulaGAN take about 1 s
per epoch on 2,000 rows with one CPU thread, so 150 keeps three seeds of everything under
30 minutes."""
QUICK_EPOCHS = 5
QUICK_TOKEN_BUDGET = 1000
"""Token budget of the quick run's embedded-model method: one LLM call, then the statistical
planner completes the records."""
C2ST_CLASSIFIER = 'gradient_boosting'

NUMERIC_COLUMNS = ('user_age', 'price')
SHORT_NAMES = {
    'user_age': 'age',
    'gender': 'gender',
    'location_tier': 'location',
    'product_category': 'category',
    'price': 'price',
    'payment_method': 'payment',
}
LEVELS = {
    'gender': GENDERS,
    'location_tier': LOCATION_TIERS,
    'product_category': CATEGORIES,
    'payment_method': PAYMENT_METHODS,
}
NUMERIC_RANGES = {'user_age': tuple(AGE_BOUNDS), 'price': (0.0, 2000.0)}
HISTOGRAM_BINS = 36
AGE_GROUP_BIN_EDGES = [AGE_BOUNDS[0], *AGE_GROUP_EDGES, AGE_BOUNDS[1]]
JOINTS = {
    'category x age group x gender': (
        ['product_category', 'user_age', 'gender'],
        {'user_age': AGE_GROUP_BIN_EDGES},
    ),
    'price (6 quantile bins) x category': (['price', 'product_category'], {'price': 6}),
    'payment x tier': (['payment_method', 'location_tier'], None),
}
"""The network's dependencies, each as ``(columns, bins)`` for :func:`joint_tvd`."""

SPEC_JOINTS = {
    'marginals': None,
    'marginals + joints': [
        ['product_category', 'user_age', 'gender'],
        ['price', 'product_category'],
        ['payment_method', 'location_tier'],
    ],
}
"""The two specs of the ablation (paper, Figure 13): the joints each adds to the marginals.
The joints are those of ``specs/examples/ecommerce.json`` (``evaluation/make_example_specs.py``)."""

TARGETS = ('discount_propensity', 'lifetime_value_band')
FEATURES = list(COLUMNS)

PAPER_TABLE_1 = {
    'TVAE': (2.06, 0.032, 0.008, 0.01, 0.056, 0.043, 0.054, 0.02, 113.194, 0.085, 0.017, 0.013),
    'CTGAN': (4.429, 0.057, 0.117, 0.065, 0.162, 0.076, 0.080, 0.028, 138.998, 0.059, 0.088,
              0.022),
    'CopulaGAN': (4.82, 0.027, 0.052, 0.016, 0.045, 0.031, 0.057, 0.024, 151.239, 0.047, 0.045,
                  0.014),
    'GReaT': (2.862, 0.052, 0.016, 0.009, 0.039, 0.020, 0.045, 0.027, 169.866, 0.104, 0.009,
              0.012),
    'TabSyn': (1.196, 0.012, 0.012, 0.022, 0.007, 0.022, 0.045, 0.01, 114.12, 0.067, 0.028,
               0.005),
    'LLMSynthor': (1.13, 0.023, 0.002, 0.008, 0.002, 0.012, 0.010, 0.022, 12.762, 0.011, 0.003,
                   0.004),
}
"""Table 1 of the paper: per variable (in :data:`COLUMNS` order) the distance, then the gap."""

Method = Callable[[pd.DataFrame, object, int], 'tuple[pd.DataFrame | None, dict]']


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch comes with sdv
        return

    torch.manual_seed(seed)


def sdv_method(synthesizer_name, **parameters):
    """Make a registry method that fits an SDV single-table synthesizer on the reference rows.

    Args:
        synthesizer_name (str):
            Name of a class of ``sdv.single_table`` (e.g. ``'CTGANSynthesizer'``).
        **parameters:
            Passed to the synthesizer's constructor (e.g. ``epochs=300``).

    Returns:
        callable:
            ``method(reference_rows, metadata, seed) -> (synthetic_rows, info)``, with
            ``fit_seconds`` and ``sample_seconds`` in ``info``.
    """

    def run(reference, metadata, seed):
        import sdv.single_table

        _seed_everything(seed)
        synthesizer = getattr(sdv.single_table, synthesizer_name)(metadata, **parameters)
        start = time.perf_counter()
        synthesizer.fit({TABLE_NAME: reference})
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        sampled = synthesizer.sample(num_rows=len(reference))
        sample_seconds = time.perf_counter() - start
        synthetic = sampled[TABLE_NAME] if isinstance(sampled, dict) else sampled
        return synthetic, {'fit_seconds': fit_seconds, 'sample_seconds': sample_seconds}

    run.__name__ = f'sdv_{synthesizer_name}'
    return run


def derive_reference_spec(reference, metadata, spec_kind):
    """Derive the LLMSynthor spec from the reference rows, as ``specs/examples/ecommerce.json``.

    The bins are the default quantile bins of :meth:`MacroSpec.from_data` (6 main bins, 8
    sub-bins each); the context, column descriptions and rules are those of the example spec
    (``evaluation/make_example_specs.py``).

    Args:
        reference (pandas.DataFrame):
            The reference rows.
        metadata (sdv.metadata.Metadata):
            The metadata of the ``transactions`` table.
        spec_kind (str):
            A key of :data:`SPEC_JOINTS`: ``'marginals'`` or ``'marginals + joints'``.

    Returns:
        MacroSpec:
            The spec (only aggregates of the rows).
    """
    from sdv_llmsynthor.spec.model import MacroSpec, RuleSpec

    if spec_kind not in SPEC_JOINTS:
        raise ValueError(f"The 'spec_kind' must be one of {list(SPEC_JOINTS)}. Got {spec_kind!r}.")

    examples = _example_specs_module()
    spec = MacroSpec.from_data(
        reference, metadata, table_name=TABLE_NAME, name='ecommerce',
        context=examples.ECOMMERCE_CONTEXT, joints=SPEC_JOINTS[spec_kind],
    )
    table = spec.tables[TABLE_NAME]
    table.context = 'One row per purchase.'
    for column, text in examples.ECOMMERCE_DESCRIPTIONS.items():
        table.columns[column].description = text

    table.rules = [
        RuleSpec('adult buyer', 'user_age >= 18 and user_age <= 90',
                 'Buyers are between 18 and 90 years old.'),
        RuleSpec('price range', 'price >= 0 and price <= 2000', 'Prices are 0 to 2,000 USD.'),
    ]
    return spec


def _example_specs_module():
    path = REPOSITORY_ROOT / 'evaluation' / 'make_example_specs.py'
    spec = importlib.util.spec_from_file_location('_ecommerce_example_specs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _make_client(llm, seed):
    """The LLM argument of the synthesizer: the embedded model runs on one thread."""
    if llm == 'local':
        from sdv_llmsynthor.llm.local import LocalLlamaClient

        return LocalLlamaClient(n_threads=1, seed=seed)

    return llm


def _unavailable(llm):
    if llm == 'local' and (importlib.util.find_spec('llama_cpp') is None):
        return 'not run (llama-cpp-python not installed)'
    if isinstance(llm, str) and llm.startswith('openai') and not os.environ.get(
            'LLMSYNTHOR_BASE_URL'):
        return 'not run (LLMSYNTHOR_BASE_URL not set)'
    return None


def llmsynthor_method(spec_kind, planner='statistical', llm=None, token_budget=None,
                      max_iterations=30):
    """Make a registry method that fits LLMSynthor on a spec derived from the reference rows.

    The synthesizer is ``LLMSynthorSynthesizer(metadata, spec=..., planner=..., llm=...)``,
    fitted with ``fit()`` on the spec alone (the rows never reach it), then asked for as many
    rows as the reference has.

    Args:
        spec_kind (str):
            ``'marginals'`` or ``'marginals + joints'`` (see :func:`derive_reference_spec`).
        planner (str):
            ``'statistical'``, ``'anchored'`` or ``'free'``.
        llm (str or None):
            ``'local'`` (the embedded model, on one thread), ``'openai'`` (the endpoint of
            ``LLMSYNTHOR_BASE_URL``; the method is not run when it is unset) or None.
        token_budget (int or None):
            The synthesizer's ``token_budget``.
        max_iterations (int):
            The synthesizer's ``max_iterations``.

    Returns:
        callable:
            ``method(reference_rows, metadata, seed) -> (synthetic_rows, info)``; ``info``
            holds the timings, ``llm_calls``, ``prompt_tokens``, ``completion_tokens``,
            ``tokens``, ``iterations``, ``stopped_by`` and ``convergence`` (mean and max TVD to
            the spec per fit iteration, after the fit's calibration and of the sampled rows).
    """

    def run(reference, metadata, seed):
        reason = _unavailable(llm)
        if reason:
            return None, {'status': reason}

        from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

        _seed_everything(seed)
        start = time.perf_counter()
        spec = derive_reference_spec(reference, metadata, spec_kind)
        synthesizer = LLMSynthorSynthesizer(
            metadata, spec=spec, planner=planner, llm=_make_client(llm, seed),
            num_rows=len(reference), max_iterations=max_iterations, token_budget=token_budget,
            seed=seed, verbose=False,
        )
        synthesizer.fit()
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        synthetic = synthesizer.sample(num_rows=len(reference))[TABLE_NAME]
        sample_seconds = time.perf_counter() - start
        usage = synthesizer.get_usage()
        info = {
            'fit_seconds': fit_seconds,
            'sample_seconds': sample_seconds,
            'llm_calls': int(usage['llm_calls']),
            'prompt_tokens': int(usage['prompt_tokens']),
            'completion_tokens': int(usage['completion_tokens']),
            'tokens': int(usage['prompt_tokens'] + usage['completion_tokens']),
        }
        info.update(convergence_info(synthesizer))
        return synthetic, info

    run.__name__ = f"llmsynthor_{planner}_{spec_kind.replace(' + ', '_')}"
    return run


def convergence_info(synthesizer):
    """The convergence record of a fitted ``LLMSynthorSynthesizer``, from its run reports.

    Args:
        synthesizer (LLMSynthorSynthesizer):
            Fitted and sampled once.

    Returns:
        dict:
            ``iterations``, ``stopped_by`` and ``convergence``: ``history`` (per fit iteration:
            ``iteration``, ``pool_rows``, ``mean_tvd``, ``max_tvd``, ``llm_calls``),
            ``calibrated_mean_tvd`` (the fit's calibrated output) and ``sample_mean_tvd`` (the
            sampled rows), all against the spec's statistics.
    """
    fit_report = synthesizer.get_run_report('fit')
    sample_report = synthesizer.get_run_report('sample')
    columns = ['iteration', 'pool_rows', 'mean_tvd', 'max_tvd', 'llm_calls']
    history = [
        {key: (int(row[key]) if key in ('iteration', 'pool_rows', 'llm_calls')
               else float(row[key])) for key in columns}
        for row in fit_report['history'].to_dict('records')
    ]
    convergence = {
        'history': history,
        'calibrated_mean_tvd': float(fit_report['statistics']['tvd'].mean()),
        'sample_mean_tvd': (float(sample_report['statistics']['tvd'].mean())
                            if sample_report is not None else None),
    }
    return {'iterations': len(history), 'stopped_by': str(fit_report['stopped_by']),
            'convergence': convergence}


def reference_draw(reference, metadata, seed):
    """A fresh draw of the Bayesian network, as large as the reference: the noise floor.

    Any method whose numbers are near this row is as close to the reference as a second real
    sample of the same population is.

    Args:
        reference (pandas.DataFrame):
            The reference rows (only their number is used).
        metadata (sdv.metadata.Metadata):
            Unused.
        seed (int):
            The experiment seed; the draw uses ``seed + 2000``.

    Returns:
        tuple[pandas.DataFrame, dict]:
            The rows and their timing.
    """
    start = time.perf_counter()
    rows = sample_ecommerce(len(reference), seed + REFERENCE_DRAW_SEED_OFFSET)
    return rows, {'fit_seconds': 0.0, 'sample_seconds': time.perf_counter() - start}


REFERENCE_NAME = 'Reference (another BN draw)'
SMOLLM = 'SmolLM2-135M'
LLMSYNTHOR_METHODS = {
    'stat-m': ('LLMSynthor statistical, marginals',
               llmsynthor_method('marginals')),
    'stat-mj': ('LLMSynthor statistical, marginals + joints',
                llmsynthor_method('marginals + joints')),
    'anchored-mj': (f'LLMSynthor anchored ({SMOLLM}), marginals + joints',
                    llmsynthor_method('marginals + joints', 'anchored', 'local')),
    'anchored-m': (f'LLMSynthor anchored ({SMOLLM}), marginals',
                   llmsynthor_method('marginals', 'anchored', 'local')),
    'free-mj': (f'LLMSynthor free ({SMOLLM}, paper prompt), marginals + joints',
                llmsynthor_method('marginals + joints', 'free', 'local')),
    'endpoint-mj': ('LLMSynthor anchored (endpoint), marginals + joints',
                    llmsynthor_method('marginals + joints', 'anchored', 'openai')),
}
"""The LLMSynthor methods of the full run, by key: ``(display name, method)``."""
EMBEDDED_KEYS = ('anchored-mj', 'anchored-m', 'free-mj')
"""The methods that run the embedded model (slow on CPU: minutes per seed)."""

METHOD_KEYS: dict[str, str] = {
    'reference': REFERENCE_NAME,
    'gaussiancopula': 'GaussianCopula',
    **{name.lower(): f'{name} ({epochs} epochs)' for name, epochs in FULL_EPOCHS.items()},
    **{key: name for key, (name, _) in LLMSYNTHOR_METHODS.items()},
}
"""Short keys of the full run's methods (``--methods`` accepts keys or display names)."""

METHODS: dict[str, Method] = {
    REFERENCE_NAME: reference_draw,
    'GaussianCopula': sdv_method('GaussianCopulaSynthesizer'),
    **{
        f'{name} ({epochs} epochs)': sdv_method(f'{name}Synthesizer', epochs=epochs)
        for name, epochs in FULL_EPOCHS.items()
    },
    **dict(LLMSYNTHOR_METHODS.values()),
}
"""Methods of the full run, by display name."""

QUICK_ANCHORED_NAME = (f'LLMSynthor anchored ({SMOLLM}, {QUICK_TOKEN_BUDGET:,}-token budget), '
                       'marginals + joints')
QUICK_METHOD_KEYS: dict[str, str] = {
    'reference': REFERENCE_NAME,
    'gaussiancopula': 'GaussianCopula',
    'ctgan': f'CTGAN ({QUICK_EPOCHS} epochs)',
    'stat-m': LLMSYNTHOR_METHODS['stat-m'][0],
    'stat-mj': LLMSYNTHOR_METHODS['stat-mj'][0],
    'anchored-mj': QUICK_ANCHORED_NAME,
}
"""Short keys of the quick run's methods."""

QUICK_METHODS: dict[str, Method] = {
    REFERENCE_NAME: reference_draw,
    'GaussianCopula': sdv_method('GaussianCopulaSynthesizer'),
    f'CTGAN ({QUICK_EPOCHS} epochs)': sdv_method('CTGANSynthesizer', epochs=QUICK_EPOCHS),
    LLMSYNTHOR_METHODS['stat-m'][0]: LLMSYNTHOR_METHODS['stat-m'][1],
    LLMSYNTHOR_METHODS['stat-mj'][0]: LLMSYNTHOR_METHODS['stat-mj'][1],
    QUICK_ANCHORED_NAME: llmsynthor_method('marginals + joints', 'anchored', 'local',
                                           token_budget=QUICK_TOKEN_BUDGET),
}
"""Methods of the ``--quick`` run, by display name."""

GROUP_KEYS = {
    'sdv': ('reference', 'gaussiancopula', 'ctgan', 'tvae', 'copulagan'),
    'llmsynthor': tuple(LLMSYNTHOR_METHODS),
    'embedded': EMBEDDED_KEYS,
}
"""Keys standing for several methods in ``--methods`` (``sdv`` includes the reference draw)."""


def register_method(name, method, quick_method=None):
    """Add a method to the full run and, if given, its cheaper variant to the quick run.

    Args:
        name (str):
            Display name in the tables.
        method (callable):
            ``method(reference_rows, metadata, seed) -> (synthetic_rows, info)``.
        quick_method (callable or None):
            The variant for ``--quick``; ``None`` leaves the method out of the quick run.
    """
    METHODS[name] = method
    if quick_method is not None:
        QUICK_METHODS[name] = quick_method


def select_methods(methods, names, keys):
    """The methods named by display names, short keys or group keys, in registry order.

    Args:
        methods (dict[str, callable]):
            The registry (full or quick).
        names (list[str] or None):
            What ``--methods`` got; None selects every method.
        keys (dict[str, str]):
            Short keys to display names (:data:`METHOD_KEYS` or :data:`QUICK_METHOD_KEYS`).

    Returns:
        dict[str, callable]:
            The selected methods.

    Raises:
        ValueError: if a name is neither a method, a key nor a group.
    """
    if not names:
        return dict(methods)

    wanted = set()
    unknown = []
    for name in names:
        if name in methods:
            wanted.add(name)
        elif name in keys and keys[name] in methods:
            wanted.add(keys[name])
        elif name in GROUP_KEYS:
            wanted.update(keys[key] for key in GROUP_KEYS[name]
                          if key in keys and keys[key] in methods)
        else:
            unknown.append(name)

    if unknown:
        known = [f'{key} ({value})' for key, value in keys.items() if value in methods]
        raise ValueError(
            f'Unknown methods {unknown}. Known keys: {known}; groups: {list(GROUP_KEYS)}; or a '
            'display name.'
        )

    return {name: method for name, method in methods.items() if name in wanted}


def load_metadata():
    """Load ``metadata/ecommerce.json`` with SDV.

    Returns:
        sdv.metadata.Metadata:
            The metadata of the ``transactions`` table.
    """
    from sdv.metadata import Metadata

    return Metadata.load_from_json(str(METADATA_PATH))


def _conform(synthetic):
    missing = [column for column in COLUMNS if column not in synthetic.columns]
    if missing:
        raise ValueError(f'The synthetic rows lack the columns {missing}.')

    synthetic = synthetic[list(COLUMNS)].reset_index(drop=True).copy()
    for column in NUMERIC_COLUMNS:
        synthetic[column] = synthetic[column].astype(float)

    return synthetic


def evaluate_synthetic(reference, test, synthetic, seed, classifier=C2ST_CLASSIFIER):
    """Score one synthetic table against the reference rows and the real test set.

    Args:
        reference (pandas.DataFrame):
            The reference rows the method learned from.
        test (pandas.DataFrame):
            The real test rows, with the derived labels.
        synthetic (pandas.DataFrame):
            The synthetic rows.
        seed (int):
            Seed of the classifiers.
        classifier (str):
            Classifier of the C2ST gaps.

    Returns:
        dict[str, float]:
            Flat scores: ``marginal/<column>`` (Wasserstein or TVD), ``gap/<column>``,
            ``gap/rows``, ``joint/<name>``, ``utility/<target>/<model>/<accuracy|macro_f1>``.
    """
    scores = {}
    for column in COLUMNS:
        distance = wasserstein if column in NUMERIC_COLUMNS else tvd
        scores[f'marginal/{column}'] = distance(reference[column], synthetic[column])

    gaps = per_variable_c2st(reference, synthetic, list(COLUMNS), seed=seed, classifier=classifier)
    scores.update({f'gap/{column}': gap for column, gap in gaps.items()})
    scores['gap/rows'] = c2st_gap(reference, synthetic, list(COLUMNS), seed=seed,
                                  classifier=classifier)
    for name, (columns, bins) in JOINTS.items():
        scores[f'joint/{name}'] = joint_tvd(reference, synthetic, columns, bins=bins)

    labelled = add_derived_variables(synthetic)
    for target in TARGETS:
        results = downstream_utility(labelled, test, target, FEATURES, seed=seed)
        for model, model_scores in results.items():
            for score_name, value in model_scores.items():
                scores[f'utility/{target}/{model}/{score_name}'] = value

    return scores


def marginal_histograms(frame):
    """Shares of every column's values, the data of the marginals plot.

    Numeric columns are cut into :data:`HISTOGRAM_BINS` equal bins over their range (values
    outside are clipped into the outer bins); categorical columns are counted per level.

    Args:
        frame (pandas.DataFrame):
            Rows with the six columns.

    Returns:
        dict[str, list[float]]:
            Shares per column (each list sums to 1).
    """
    histograms = {}
    for column in COLUMNS:
        if column in NUMERIC_COLUMNS:
            low, high = NUMERIC_RANGES[column]
            edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
            counts, _ = np.histogram(frame[column].astype(float).clip(low, high), bins=edges)
        else:
            counts = frame[column].value_counts().reindex(LEVELS[column], fill_value=0)
            counts = counts.to_numpy()
        total = max(int(np.sum(counts)), 1)
        histograms[column] = [round(float(count) / total, 6) for count in counts]

    return histograms


def run_experiment(methods, seeds, metadata, num_rows=NUM_ROWS, classifier=C2ST_CLASSIFIER,
                   log=print):
    """Run every method on every seed and score it.

    Args:
        methods (dict[str, callable]):
            The methods, by display name.
        seeds (list[int]):
            Experiment seeds.
        metadata (sdv.metadata.Metadata):
            Metadata passed to the methods.
        num_rows (int):
            Reference and test rows per seed. Defaults to 2,000.
        classifier (str):
            Classifier of the C2ST gaps.
        log (callable):
            Progress messages go here. Defaults to ``print``.

    Returns:
        tuple[list[dict], dict[str, pandas.DataFrame]]:
            One record per (method, seed) with its scores and info (or, for a method that
            could not run, its ``status``), and the synthetic rows of the first seed by method
            (for the plots).
    """
    records = []
    first_samples = {}
    for seed in seeds:
        reference = sample_ecommerce(num_rows, seed)
        test = add_derived_variables(sample_ecommerce(num_rows, seed + TEST_SEED_OFFSET))
        if seed == seeds[0]:
            first_samples['Reference rows'] = reference

        for name, method in methods.items():
            start = time.perf_counter()
            synthetic, info = method(reference.copy(), metadata, seed)
            record = {'method': name, 'seed': seed}
            if synthetic is None:
                record['status'] = str(info.get('status', 'not run'))
                records.append(record)
                log(f'seed {seed} {name}: {record["status"]}')
                continue

            synthetic = _conform(synthetic)
            record['method_seconds'] = time.perf_counter() - start
            record.update(evaluate_synthetic(reference, test, synthetic, seed,
                                             classifier=classifier))
            record.update({key: value for key, value in info.items() if _is_number(value)})
            for key in ('stopped_by', 'convergence'):
                if key in info:
                    record[key] = info[key]

            records.append(record)
            if seed == seeds[0]:
                first_samples[name] = synthetic

            log(
                f"seed {seed} {name}: {record['method_seconds']:.1f} s, "
                f"W(age) {record['marginal/user_age']:.3f}, "
                f"W(price) {record['marginal/price']:.2f}, gap(rows) {record['gap/rows']:.3f}"
            )

    return records, first_samples


def merge_records(stored, new, order=None):
    """Replace the stored records of the (method, seed) pairs just run, keep the others.

    Args:
        stored (list[dict]):
            Records of earlier runs.
        new (list[dict]):
            Records of this run.
        order (list[str] or None):
            Method display names in the order the tables list them; methods not in it follow,
            in order of appearance.

    Returns:
        list[dict]:
            The merged records, sorted by method (``order``) then seed.
    """
    replaced = {(record['method'], record['seed']) for record in new}
    merged = [record for record in stored
              if (record['method'], record['seed']) not in replaced] + list(new)
    names = list(dict.fromkeys(list(order or []) + [record['method'] for record in merged]))
    rank = {name: index for index, name in enumerate(names)}
    return sorted(merged, key=lambda record: (rank[record['method']], record['seed']))


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _format(mean, std, digits):
    if pd.isna(mean):
        return '–'
    if pd.isna(std):
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _scored(records):
    return [record for record in records if 'status' not in record]


def _summary(records):
    frame = pd.DataFrame(_scored(records))
    if frame.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    order = list(dict.fromkeys(frame['method']))
    numeric = frame.drop(columns=['method', 'seed']).select_dtypes(include='number')
    groups = numeric.groupby(frame['method'])
    return (groups.mean().reindex(order), groups.std(ddof=1).reindex(order),
            groups.median().reindex(order))


def _not_run(records):
    """Methods with no scored record, and why (their last status)."""
    scored = {record['method'] for record in _scored(records)}
    return {record['method']: record['status'] for record in records
            if 'status' in record and record['method'] not in scored}


def _cell(means, stds, method, key, digits):
    if key not in means.columns or method not in means.index:
        return '–'
    return _format(means.loc[method, key], stds.loc[method, key], digits)


def _method_order(records):
    return list(dict.fromkeys(record['method'] for record in records))


def _seeds_by_method(records):
    seeds = {}
    for record in _scored(records):
        seeds.setdefault(record['method'], []).append(record['seed'])
    return seeds


def _run_lines(config):
    runs = config.get('runs') or []
    if not runs:
        return []
    lines = ['- Runs whose results these tables hold (a later run replaces the (method, seed) '
             'results it recomputes):']
    for run in runs:
        load = run.get('load_average')
        load_text = (f", load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
                     'at start on 2 shared cores') if load else ''
        lines.append(
            f"  - `{run['command']}` on {run.get('date', '?')}: "
            f"{len(run.get('methods') or []) or 'all'} methods, seeds {run.get('seeds')}, "
            f"{run.get('total_seconds', 0.0):.0f} s{load_text}."
        )
    return lines


HEADLINE_PAPER_ROWS = ('TVAE', 'CTGAN', 'CopulaGAN', 'LLMSynthor')


def render_headline(records):
    """The headline table: Table 1's distances, the three joint TVDs and the whole-row C2ST gap.

    Args:
        records (list[dict]):
            The records.

    Returns:
        list[str]:
            Markdown lines of the table (mean ± std over seeds), with the paper's rows.
    """
    means, stds, _ = _summary(records)
    not_run = _not_run(records)
    header = (['Method', 'seeds']
              + [f"{'W' if column in NUMERIC_COLUMNS else 'TVD'}({SHORT_NAMES[column]})"
                 for column in COLUMNS]
              + ['joint cat x age grp x gender', 'joint price x cat', 'joint payment x tier',
                 'C2ST gap (rows)'])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    seeds = _seeds_by_method(records)
    for method in _method_order(records):
        if method in not_run:
            lines.append('| ' + ' | '.join([method, not_run[method]]
                                            + ['–'] * (len(header) - 2)) + ' |')
            continue
        cells = [method, str(len(seeds.get(method, [])))]
        cells += [_cell(means, stds, method, f'marginal/{column}', 2 if column == 'price' else 3)
                  for column in COLUMNS]
        cells += [_cell(means, stds, method, f'joint/{name}', 3) for name in JOINTS]
        cells.append(_cell(means, stds, method, 'gap/rows', 3))
        lines.append('| ' + ' | '.join(cells) + ' |')
    for name in HEADLINE_PAPER_ROWS:
        values = PAPER_TABLE_1[name][::2]
        label = f'*paper: {name}*' + (' (to beat)' if name == 'LLMSynthor' else '')
        lines.append('| ' + ' | '.join([label, ''] + [f'*{value:g}*' for value in values]
                                       + [''] * 4) + ' |')
    return lines


def render_markdown(records, config):
    """Render the results as markdown tables (mean ± standard deviation over seeds).

    Args:
        records (list[dict]):
            Records returned by :func:`run_experiment` (or merged by :func:`merge_records`).
        config (dict):
            Run configuration shown above the tables: ``quick``, ``command``, ``seeds``,
            ``num_rows``, ``classifier``, ``total_seconds``, ``versions``, ``label_shares`` and
            optionally ``runs`` (one dict per merged run).

    Returns:
        str:
            The markdown document.
    """
    means, stds, medians = _summary(records)
    methods = _method_order(records)
    not_run = _not_run(records)
    seeds_by_method = _seeds_by_method(records)
    uneven = {method: seeds for method, seeds in seeds_by_method.items()
              if sorted(seeds) != sorted(config['seeds'])}
    lines = [
        f"# E-commerce transactions{' (quick)' if config['quick'] else ''}",
        '',
        'Paper: LLMSynthor, Table 1, Figures 4 and 13; data generator of appendix A.1 '
        '(`sdv_llmsynthor.evaluation.ecommerce_bn`). Generated by '
        + (f"`{config['command']}`." if len(config.get('runs') or []) <= 1
           else 'the runs listed below, merged with `--merge`.'),
        '',
        f"- Seeds: {config['seeds']}; per seed {config['num_rows']:,} reference rows (seed s) that "
        f"the methods learn from, {config['num_rows']:,} real test rows (seed s + "
        f'{TEST_SEED_OFFSET}) for downstream utility; every method samples '
        f"{config['num_rows']:,} rows. Cells are mean ± std over seeds (std with ddof=1); "
        'wall times are medians.',
    ]
    if uneven:
        lines.append('- Methods run on other seeds (their cells average those seeds only): '
                     + '; '.join(f'{method}: seeds {sorted(seeds)}'
                                 for method, seeds in uneven.items()) + '.')
    lines += [
        '- SDV synthesizers with default parameters except the epochs (in the method names). '
        'Torch and BLAS limited to 1 thread.'
        + (f" Total wall time {config['total_seconds']:.0f} s." if not config.get('runs') else ''),
        '- LLMSynthor methods: `LLMSynthorSynthesizer(metadata, spec=..., planner=..., llm=...)` '
        'fitted with `fit()` on a spec derived from the reference rows by '
        '`MacroSpec.from_data` (6 quantile main bins x 8 sub-bins per numeric column, as '
        '`specs/examples/ecommerce.json`); *marginals*: the six marginals; *marginals + joints*: '
        'plus category x age x gender, price x category, payment x tier on the main bins. '
        f'The embedded model is {SMOLLM}-Instruct (Q4_1, llama.cpp, 1 thread), no response '
        'cache; 30 iterations at most.',
        f"- `{REFERENCE_NAME}` is a fresh sample of the network (seed s + "
        f'{REFERENCE_DRAW_SEED_OFFSET}): the sampling-noise floor of every metric.',
        f"- C2ST: {config['classifier']} classifier, stratified 5-fold CV, gap = |accuracy - 0.5|; "
        "'per variable' trains one classifier per column (as the paper), 'rows' one on whole rows.",
        f"- Versions: {config['versions']}.",
        *_run_lines(config),
        '',
        '## Headline (lower is better)',
        '',
        'Distances to the reference rows (W = Wasserstein, TVD = total variation distance), '
        'joint TVDs of the network\'s dependencies and the whole-row C2ST gap; mean ± std over '
        'the seeds in column *seeds*. Paper rows in italics (its own data draw).',
        '',
        *render_headline(records),
        '',
        '## Marginals (Table 1 layout; lower is better)',
        '',
        'W = Wasserstein distance, TVD = total variation distance, Gap = per-variable C2ST gap, '
        'all against the reference rows.',
        '',
    ]

    def not_run_row(method, width):
        return '| ' + ' | '.join([method, not_run[method]] + ['–'] * (width - 2)) + ' |'

    header = ['Method']
    for column in COLUMNS:
        kind = 'W' if column in NUMERIC_COLUMNS else 'TVD'
        header += [f'{kind}({SHORT_NAMES[column]})', 'Gap']

    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method in methods:
        if method in not_run:
            lines.append(not_run_row(method, len(header)))
            continue
        cells = [method]
        for column in COLUMNS:
            digits = 2 if column == 'price' else 3
            cells.append(_cell(means, stds, method, f'marginal/{column}', digits))
            cells.append(_cell(means, stds, method, f'gap/{column}', 3))
        lines.append('| ' + ' | '.join(cells) + ' |')

    for name, values in PAPER_TABLE_1.items():
        cells = [f'*paper: {name}*'] + [f'*{value:g}*' for value in values]
        lines.append('| ' + ' | '.join(cells) + ' |')

    lines += [
        '',
        'Rows in italics are copied from the paper (its own data draw, one value per cell).',
        '',
        '## Joint dependencies (lower is better)',
        '',
        'Joint TVD of the contingency tables of the network\'s dependencies (age groups '
        '<35, 35-55, >=55; price in 6 quantile bins of the reference rows, outer bins '
        'open-ended), and the C2ST gap of one classifier on whole rows.',
        '',
    ]
    header = ['Method'] + [f'TVD {name}' for name in JOINTS] + ['C2ST gap (rows)']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method in methods:
        if method in not_run:
            lines.append(not_run_row(method, len(header)))
            continue
        cells = [method] + [_cell(means, stds, method, f'joint/{name}', 3) for name in JOINTS]
        cells.append(_cell(means, stds, method, 'gap/rows', 3))
        lines.append('| ' + ' | '.join(cells) + ' |')

    lines += [
        '',
        '## Downstream utility (higher is better)',
        '',
        'Classifiers trained on the synthetic rows (features: the six columns; labels computed '
        'from them as A.1 defines), scored on the real test set: accuracy / macro F1. '
        f"Label shares in the test set: {config['label_shares']}. As published, "
        'discount_propensity can never be Low (S > -1 always), so it is a two-class task.',
        '',
    ]
    for target in TARGETS:
        header = ['Method'] + [model.replace('_', ' ') for model in DOWNSTREAM_MODELS]
        lines += [f'### {target}', '', '| ' + ' | '.join(header) + ' |',
                  '|' + '---|' * len(header)]
        for method in methods:
            if method in not_run:
                lines.append(not_run_row(method, len(header)))
                continue
            cells = [method]
            for model in DOWNSTREAM_MODELS:
                accuracy = _cell(means, stds, method, f'utility/{target}/{model}/accuracy', 3)
                macro_f1 = _cell(means, stds, method, f'utility/{target}/{model}/macro_f1', 3)
                cells.append(f'{accuracy} / {macro_f1}')
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')

    lines += render_convergence_table(records)
    lines += [
        '## Cost',
        '',
        'Median wall time per run (seconds; the machine is shared, so indicative) and LLM '
        'usage per run (median), where a method reports it. *fit s* of an LLMSynthor method '
        'includes deriving its spec.',
        '',
        '| Method | seeds | fit s | sample s | total s | LLM calls | prompt tokens | '
        'completion tokens |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for method in methods:
        if method in not_run:
            lines.append(not_run_row(method, 8))
            continue
        cells = [
            method,
            str(len(seeds_by_method.get(method, []))),
            _median_cell(medians, method, 'fit_seconds', 1),
            _median_cell(medians, method, 'sample_seconds', 2),
            _median_cell(medians, method, 'method_seconds', 1),
            _median_cell(medians, method, 'llm_calls', 0),
            _median_cell(medians, method, 'prompt_tokens', 0),
            _median_cell(medians, method, 'completion_tokens', 0),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')

    lines.append('')
    return '\n'.join(lines)


def _median_cell(medians, method, key, digits):
    if key not in medians.columns or method not in medians.index:
        return '–'
    value = medians.loc[method, key]
    if pd.isna(value):
        return '–'
    return f'{value:,.{digits}f}'


CONVERGENCE_ITERATIONS = (0, 1, 2, 4, 8)


def _convergence_runs(records):
    runs = {}
    for record in _scored(records):
        convergence = record.get('convergence')
        if convergence and convergence.get('history'):
            runs.setdefault(record['method'], []).append((record['seed'], convergence))
    return runs


def render_convergence_table(records):
    """The convergence section: mean TVD to the spec per fit iteration, per LLMSynthor method.

    Args:
        records (list[dict]):
            The records; those with a ``convergence`` entry are shown.

    Returns:
        list[str]:
            Markdown lines (none when no record has a convergence entry).
    """
    runs = _convergence_runs(records)
    if not runs:
        return []
    header = (['Method', 'iterations', 'stopped by']
              + [f'it. {iteration}' for iteration in CONVERGENCE_ITERATIONS]
              + ['last pool', 'fit, calibrated', 'sampled rows'])
    lines = [
        '## Convergence (LLMSynthor; lower is better)',
        '',
        'Mean TVD over the spec\'s statistics between the pool and the spec after each fit '
        'iteration (before calibration; the pool grows to 1.2 x the rows), after the fit\'s '
        'calibration, and of the rows `sample()` returned; medians over seeds. The two specs '
        'average different statistics (6 marginals; 6 marginals and 3 joints). Plot: '
        '`ecommerce*_convergence.png`.',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    for method, method_runs in runs.items():
        histories = [convergence['history'] for _, convergence in method_runs]
        cells = [method, _median_text([len(history) for history in histories], 0),
                 ', '.join(sorted({record.get('stopped_by', '?') for record in _scored(records)
                                   if record['method'] == method}))]
        for iteration in CONVERGENCE_ITERATIONS:
            values = [history[iteration]['mean_tvd'] for history in histories
                      if iteration < len(history)]
            cells.append(_median_text(values, 4))
        cells.append(_median_text([history[-1]['mean_tvd'] for history in histories], 4))
        cells.append(_median_text([convergence['calibrated_mean_tvd']
                                   for _, convergence in method_runs], 4))
        cells.append(_median_text([convergence['sample_mean_tvd'] for _, convergence in method_runs
                                   if convergence.get('sample_mean_tvd') is not None], 4))
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    return lines


def _median_text(values, digits):
    values = [value for value in values if value is not None]
    if not values:
        return '–'
    return f'{float(np.median(values)):.{digits}f}'


def plot_marginals(histograms, path):
    """Plot the marginal distribution of every column, reference rows against each method.

    Args:
        histograms (dict[str, dict[str, list[float]]]):
            :func:`marginal_histograms` of each table, by label; the first is drawn as the
            reference.
        path (pathlib.Path):
            Where to write the PNG.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(18, 10))
    colours = plt.get_cmap('tab20' if len(histograms) > 10 else 'tab10')
    labels = list(histograms)
    for axis, column in zip(axes.ravel(), COLUMNS):
        if column in NUMERIC_COLUMNS:
            low, high = NUMERIC_RANGES[column]
            edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
            for index, label in enumerate(labels):
                density = np.asarray(histograms[label][column]) / np.diff(edges)
                axis.stairs(density, edges, linewidth=2.5 if index == 0 else 1.2,
                            color=colours(index), label=label)
        else:
            width = 0.8 / len(labels)
            positions = np.arange(len(LEVELS[column]))
            for index, label in enumerate(labels):
                axis.bar(positions + index * width, histograms[label][column], width=width,
                         color=colours(index), label=label)
            axis.set_xticks(positions + 0.4 - width / 2)
            axis.set_xticklabels([level.replace(' & ', ' &\n') for level in LEVELS[column]],
                                 fontsize=8)

        axis.set_title(column)

    axes[0, 0].legend(fontsize=7)
    figure.suptitle('E-commerce marginals: reference rows vs synthetic (first seed)')
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_convergence(records, path):
    """Plot the mean TVD to the spec per fit iteration of every LLMSynthor run.

    Each seed is one line; the marker after the last iteration is the fit's calibrated output.

    Args:
        records (list[dict]):
            The records; those with a ``convergence`` entry are drawn.
        path (pathlib.Path):
            Where to write the PNG.

    Returns:
        bool:
            Whether a plot was written (False when no record has a convergence entry).
    """
    runs = _convergence_runs(records)
    if not runs:
        return False

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 6))
    colours = plt.get_cmap('tab10')
    for index, (method, method_runs) in enumerate(runs.items()):
        for number, (_, convergence) in enumerate(method_runs):
            history = convergence['history']
            iterations = [entry['iteration'] for entry in history]
            values = [max(entry['mean_tvd'], 1e-5) for entry in history]
            axis.plot(iterations, values, color=colours(index), marker='.', linewidth=1.2,
                      label=method if number == 0 else None)
            axis.plot([iterations[-1], iterations[-1] + 1],
                      [values[-1], max(convergence['calibrated_mean_tvd'], 1e-5)],
                      color=colours(index), linestyle=':', linewidth=1.0)
            axis.plot([iterations[-1] + 1], [max(convergence['calibrated_mean_tvd'], 1e-5)],
                      color=colours(index), marker='*', markersize=11, linestyle='none')

    axis.set_yscale('log')
    axis.set_xlabel('fit iteration (star: after calibration)')
    axis.set_ylabel("mean TVD to the spec's statistics")
    axis.set_title('E-commerce: LLMSynthor convergence (one line per seed)')
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    found = [f'python {platform.python_version()}']
    for package in ('sdv', 'sdmetrics', 'scikit-learn', 'torch', 'numpy', 'pandas',
                    'llama_cpp_python'):
        try:
            found.append(f'{package} {version(package)}')
        except PackageNotFoundError:
            continue

    return ', '.join(found)


def _label_shares(seed, num_rows):
    test = add_derived_variables(sample_ecommerce(num_rows, seed + TEST_SEED_OFFSET))
    parts = []
    for target in TARGETS:
        shares = test[target].value_counts(normalize=True)
        shares = ', '.join(f'{level} {shares.get(level, 0.0):.2f}' for level in ('Low', 'Mid',
                                                                                 'High'))
        parts.append(f'{target} ({shares})')

    return '; '.join(parts)


def _parse_arguments(argv=None):
    parser = argparse.ArgumentParser(prog='python -m evaluation.ecommerce', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='Reference, GaussianCopula, CTGAN (5 epochs), LLMSynthor '
                             'statistical (both specs) and anchored with a 1,000-token budget; '
                             'one seed.')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='Experiment seeds (default: 0 1 2, or 0 with --quick).')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUTPUT,
                        help='Output folder (default: evaluation/results).')
    parser.add_argument('--methods', nargs='+', default=None,
                        help='Run only these methods: display names, keys (' +
                             ', '.join(METHOD_KEYS) + ') or groups (' +
                             ', '.join(GROUP_KEYS) + ').')
    parser.add_argument('--merge', action='store_true',
                        help='Merge into the stored results file: replace the (method, seed) '
                             'results run now, keep the others.')
    parser.add_argument('--render', action='store_true',
                        help='Run nothing: re-render the tables and plots from the stored JSON.')
    parser.add_argument('--rows', type=int, default=NUM_ROWS, help='Rows per table.')
    parser.add_argument('--classifier', default=C2ST_CLASSIFIER,
                        choices=['gradient_boosting', 'logistic'], help='C2ST classifier.')
    return parser.parse_args(argv)


def _legacy_runs(config):
    """The ``runs`` of a results file written before runs were recorded."""
    if config.get('runs'):
        return list(config['runs'])
    return [{'command': config.get('command', '?'), 'date': 'before 2026-11-21',
             'seeds': config.get('seeds'), 'methods': [],
             'total_seconds': config.get('total_seconds', 0.0)}]


def write_outputs(stored, output, suffix):
    """Write the markdown, the JSON and the plots of a results dict.

    Args:
        stored (dict):
            ``config``, ``records`` and ``histograms`` (by label, first seed).
        output (pathlib.Path):
            The output folder.
        suffix (str):
            ``''`` or ``'_quick'``.
    """
    output.mkdir(parents=True, exist_ok=True)
    (output / f'ecommerce{suffix}.md').write_text(render_markdown(stored['records'],
                                                                  stored['config']))
    (output / f'ecommerce{suffix}.json').write_text(
        json.dumps(stored, indent=1, default=float) + '\n'
    )
    if stored.get('histograms'):
        plot_marginals(stored['histograms'], output / f'ecommerce{suffix}_marginals.png')
    plot_convergence(stored['records'], output / f'ecommerce{suffix}_convergence.png')


def main(argv=None):
    """Run the experiment from the command line and write its tables, raw scores and plots.

    Args:
        argv (list[str] or None):
            Command-line arguments. Defaults to ``sys.argv[1:]``.
    """
    from threadpoolctl import threadpool_limits

    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = _parse_arguments(argv)
    suffix = '_quick' if arguments.quick else ''
    results_path = arguments.out / f'ecommerce{suffix}.json'
    stored = None
    if arguments.merge or arguments.render:
        if not results_path.exists():
            raise SystemExit(f'{results_path} does not exist: run without --merge/--render first.')
        stored = json.loads(results_path.read_text())

    if arguments.render:
        write_outputs(stored, arguments.out, suffix)
        print(f"Wrote {arguments.out / f'ecommerce{suffix}.md'}")
        return

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch comes with sdv
        pass

    registry = QUICK_METHODS if arguments.quick else METHODS
    keys = QUICK_METHOD_KEYS if arguments.quick else METHOD_KEYS
    try:
        methods = select_methods(registry, arguments.methods, keys)
    except ValueError as error:
        raise SystemExit(str(error)) from error

    seeds = arguments.seeds or ([0] if arguments.quick else [0, 1, 2])
    command = ' '.join(['python -m evaluation.ecommerce', *(shlex.quote(a) for a in argv)])
    run = {
        'command': command,
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'seeds': seeds,
        'methods': list(methods),
        'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
    }
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        records, samples = run_experiment(methods, seeds, load_metadata(),
                                          num_rows=arguments.rows,
                                          classifier=arguments.classifier)
    run['total_seconds'] = time.perf_counter() - start
    histograms = {label: marginal_histograms(frame) for label, frame in samples.items()}

    config = {
        'quick': arguments.quick,
        'command': command,
        'seeds': seeds,
        'num_rows': arguments.rows,
        'classifier': arguments.classifier,
        'total_seconds': run['total_seconds'],
        'versions': _versions(),
        'label_shares': _label_shares(seeds[0], arguments.rows),
        'runs': [run],
    }
    if stored is not None:
        previous = stored['config']
        if previous.get('num_rows') != arguments.rows:
            raise SystemExit(f"Cannot merge {arguments.rows}-row results into {results_path}, "
                             f"which holds {previous.get('num_rows')}-row results.")
        records = merge_records(stored['records'], records, order=list(registry))
        merged_histograms = dict(stored.get('histograms') or {})
        if seeds[0] == min(previous.get('seeds') or seeds):
            merged_histograms.update(histograms)
        histograms = {label: merged_histograms[label] for label in
                      ['Reference rows', *_method_order(records)] if label in merged_histograms}
        config['seeds'] = sorted({record['seed'] for record in records})
        config['runs'] = _legacy_runs(previous) + [run]
        config['command'] = ' + '.join(item['command'] for item in config['runs'])
        config['total_seconds'] = sum(item.get('total_seconds', 0.0) for item in config['runs'])

    write_outputs({'config': config, 'records': records, 'histograms': histograms},
                  arguments.out, suffix)
    print(f"Wrote {arguments.out / f'ecommerce{suffix}.md'}")


if __name__ == '__main__':
    main()
