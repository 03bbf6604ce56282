"""E-commerce transactions experiment (LLMSynthor paper: Table 1, Figure 4, appendix A.1).

For each seed ``s``: 2,000 reference rows are drawn from the paper's Bayesian network (seed
``s``) and a separate 2,000-row real test set (seed ``s + 1000``). Every method in the registry
receives the reference rows and returns as many synthetic rows; the synthetic rows are compared
with the reference rows (per-variable Wasserstein/TVD and C2ST gap, joint TVDs of the network's
dependencies, a whole-row C2ST gap) and used to train classifiers of the two derived labels,
scored on the real test set.

Run from the repository root::

    python -m evaluation.ecommerce --quick          # minutes: GaussianCopula, CTGAN (5 epochs)
    python -m evaluation.ecommerce                  # all methods, 3 seeds

Other methods plug in through :func:`register_method` (or by adding to :data:`METHODS` and
:data:`QUICK_METHODS`): a method is a callable ``(reference_rows, metadata, seed) ->
(synthetic_rows, info)``; ``info`` may carry ``fit_seconds``, ``sample_seconds``, ``llm_calls``,
``prompt_tokens``, ``completion_tokens`` and ``tokens``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sdv_llmsynthor.evaluation.ecommerce_bn import (
    AGE_BOUNDS,
    AGE_GROUP_EDGES,
    COLUMNS,
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

Method = Callable[[pd.DataFrame, object, int], 'tuple[pd.DataFrame, dict]']


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

METHODS: dict[str, Method] = {
    REFERENCE_NAME: reference_draw,
    'GaussianCopula': sdv_method('GaussianCopulaSynthesizer'),
    **{
        f'{name} ({epochs} epochs)': sdv_method(f'{name}Synthesizer', epochs=epochs)
        for name, epochs in FULL_EPOCHS.items()
    },
}
"""Methods of the full run, by display name."""

QUICK_METHODS: dict[str, Method] = {
    REFERENCE_NAME: reference_draw,
    'GaussianCopula': sdv_method('GaussianCopulaSynthesizer'),
    f'CTGAN ({QUICK_EPOCHS} epochs)': sdv_method('CTGANSynthesizer', epochs=QUICK_EPOCHS),
}
"""Methods of the ``--quick`` run, by display name."""


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
            One record per (method, seed) with its scores and info, and the synthetic rows of
            the first seed by method (for the plots).
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
            synthetic = _conform(synthetic)
            method_seconds = time.perf_counter() - start
            scores = evaluate_synthetic(reference, test, synthetic, seed, classifier=classifier)
            record = {'method': name, 'seed': seed, 'method_seconds': method_seconds}
            record.update(scores)
            record.update({key: value for key, value in info.items() if _is_number(value)})
            records.append(record)
            if seed == seeds[0]:
                first_samples[name] = synthetic

            log(
                f'seed {seed} {name}: {method_seconds:.1f} s, '
                f"W(age) {scores['marginal/user_age']:.3f}, "
                f"W(price) {scores['marginal/price']:.2f}, gap(rows) {scores['gap/rows']:.3f}"
            )

    return records, first_samples


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _format(mean, std, digits):
    if pd.isna(mean):
        return '–'
    if pd.isna(std):
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _summary(records):
    frame = pd.DataFrame(records)
    order = list(dict.fromkeys(frame['method']))
    numeric = frame.drop(columns=['method', 'seed'])
    means = numeric.groupby(frame['method']).mean().reindex(order)
    stds = numeric.groupby(frame['method']).std(ddof=1).reindex(order)
    return means, stds


def _cell(means, stds, method, key, digits):
    if key not in means.columns:
        return '–'
    return _format(means.loc[method, key], stds.loc[method, key], digits)


def render_markdown(records, config):
    """Render the results as markdown tables (mean ± standard deviation over seeds).

    Args:
        records (list[dict]):
            Records returned by :func:`run_experiment`.
        config (dict):
            Run configuration shown above the tables.

    Returns:
        str:
            The markdown document.
    """
    means, stds = _summary(records)
    methods = list(means.index)
    lines = [
        f"# E-commerce transactions{' (quick)' if config['quick'] else ''}",
        '',
        'Paper: LLMSynthor, Table 1 and Figure 4; data generator of appendix A.1 '
        '(`sdv_llmsynthor.evaluation.ecommerce_bn`). Generated by '
        f"`{config['command']}`.",
        '',
        f"- Seeds: {config['seeds']}; per seed {config['num_rows']:,} reference rows (seed s) that "
        f"the methods learn from, {config['num_rows']:,} real test rows (seed s + "
        f'{TEST_SEED_OFFSET}) for downstream utility; every method samples '
        f"{config['num_rows']:,} rows. Cells are mean ± std over seeds (std with ddof=1).",
        '- SDV synthesizers with default parameters except the epochs (in the method names). '
        f"Torch and BLAS limited to 1 thread. Total wall time {config['total_seconds']:.0f} s.",
        f"- `{REFERENCE_NAME}` is a fresh sample of the network (seed s + "
        f'{REFERENCE_DRAW_SEED_OFFSET}): the sampling-noise floor of every metric.',
        f"- C2ST: {config['classifier']} classifier, stratified 5-fold CV, gap = |accuracy - 0.5|; "
        "'per variable' trains one classifier per column (as the paper), 'rows' one on whole rows.",
        f"- Versions: {config['versions']}.",
        '',
        '## Marginals (Table 1 layout; lower is better)',
        '',
        'W = Wasserstein distance, TVD = total variation distance, Gap = per-variable C2ST gap, '
        'all against the reference rows.',
        '',
    ]
    header = ['Method']
    for column in COLUMNS:
        kind = 'W' if column in NUMERIC_COLUMNS else 'TVD'
        header += [f'{kind}({SHORT_NAMES[column]})', 'Gap']

    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method in methods:
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
            cells = [method]
            for model in DOWNSTREAM_MODELS:
                accuracy = _cell(means, stds, method, f'utility/{target}/{model}/accuracy', 3)
                macro_f1 = _cell(means, stds, method, f'utility/{target}/{model}/macro_f1', 3)
                cells.append(f'{accuracy} / {macro_f1}')
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')

    lines += [
        '## Cost',
        '',
        'Wall time per run (seconds) and LLM usage per run, where a method reports it.',
        '',
        '| Method | fit s | sample s | total s | LLM calls | tokens |',
        '|---|---|---|---|---|---|',
    ]
    for method in methods:
        cells = [
            method,
            _cell(means, stds, method, 'fit_seconds', 1),
            _cell(means, stds, method, 'sample_seconds', 2),
            _cell(means, stds, method, 'method_seconds', 1),
            _cell(means, stds, method, 'llm_calls', 0),
            _cell(means, stds, method, 'tokens', 0),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')

    lines.append('')
    return '\n'.join(lines)


def plot_marginals(samples, path):
    """Plot the marginal distribution of every column, reference rows against each method.

    Args:
        samples (dict[str, pandas.DataFrame]):
            Tables by label; the first is drawn as the reference.
        path (pathlib.Path):
            Where to write the PNG.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from sdv_llmsynthor.evaluation.ecommerce_bn import (
        CATEGORIES,
        GENDERS,
        LOCATION_TIERS,
        PAYMENT_METHODS,
    )

    levels = {
        'gender': GENDERS,
        'location_tier': LOCATION_TIERS,
        'product_category': CATEGORIES,
        'payment_method': PAYMENT_METHODS,
    }
    figure, axes = plt.subplots(2, 3, figsize=(16, 9))
    colours = plt.get_cmap('tab10')
    labels = list(samples)
    for axis, column in zip(axes.ravel(), COLUMNS):
        if column in NUMERIC_COLUMNS:
            low, high = (AGE_BOUNDS if column == 'user_age' else (0.0, 2000.0))
            edges = np.linspace(low, high, 37)
            for index, label in enumerate(labels):
                values = samples[label][column].clip(low, high)
                axis.hist(values, bins=edges, density=True, histtype='step',
                          linewidth=2.5 if index == 0 else 1.2, color=colours(index), label=label)
        else:
            width = 0.8 / len(labels)
            positions = np.arange(len(levels[column]))
            for index, label in enumerate(labels):
                shares = samples[label][column].value_counts(normalize=True)
                shares = shares.reindex(levels[column], fill_value=0.0)
                axis.bar(positions + index * width, shares.to_numpy(), width=width,
                         color=colours(index), label=label)
            axis.set_xticks(positions + 0.4 - width / 2)
            axis.set_xticklabels([level.replace(' & ', ' &\n') for level in levels[column]],
                                 fontsize=8)

        axis.set_title(column)

    axes[0, 0].legend(fontsize=8)
    figure.suptitle('E-commerce marginals: reference rows vs synthetic (first seed)')
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    found = [f'python {platform.python_version()}']
    for package in ('sdv', 'sdmetrics', 'scikit-learn', 'torch', 'numpy', 'pandas'):
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
                        help='GaussianCopula and CTGAN (5 epochs), one seed.')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='Experiment seeds (default: 0 1 2, or 0 with --quick).')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUTPUT,
                        help='Output folder (default: evaluation/results).')
    parser.add_argument('--methods', nargs='+', default=None,
                        help='Run only these methods (display names).')
    parser.add_argument('--rows', type=int, default=NUM_ROWS, help='Rows per table.')
    parser.add_argument('--classifier', default=C2ST_CLASSIFIER,
                        choices=['gradient_boosting', 'logistic'], help='C2ST classifier.')
    return parser.parse_args(argv)


def main(argv=None):
    """Run the experiment from the command line and write its tables, raw scores and plot.

    Args:
        argv (list[str] or None):
            Command-line arguments. Defaults to ``sys.argv[1:]``.
    """
    from threadpoolctl import threadpool_limits

    arguments = _parse_arguments(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch comes with sdv
        pass

    methods = dict(QUICK_METHODS if arguments.quick else METHODS)
    if arguments.methods:
        unknown = [name for name in arguments.methods if name not in methods]
        if unknown:
            raise SystemExit(f'Unknown methods {unknown}. Known: {list(methods)}.')
        methods = {name: methods[name] for name in arguments.methods}

    seeds = arguments.seeds or ([0] if arguments.quick else [0, 1, 2])
    suffix = '_quick' if arguments.quick else ''
    command = 'python -m evaluation.ecommerce' + (' --quick' if arguments.quick else '')
    if arguments.seeds:
        command += ' --seeds ' + ' '.join(str(seed) for seed in seeds)

    start = time.perf_counter()
    with threadpool_limits(limits=1):
        records, samples = run_experiment(methods, seeds, load_metadata(),
                                          num_rows=arguments.rows,
                                          classifier=arguments.classifier)

    config = {
        'quick': arguments.quick,
        'command': command,
        'seeds': seeds,
        'num_rows': arguments.rows,
        'classifier': arguments.classifier,
        'total_seconds': time.perf_counter() - start,
        'versions': _versions(),
        'label_shares': _label_shares(seeds[0], arguments.rows),
    }
    output = arguments.out
    output.mkdir(parents=True, exist_ok=True)
    (output / f'ecommerce{suffix}.md').write_text(render_markdown(records, config))
    (output / f'ecommerce{suffix}.json').write_text(
        json.dumps({'config': config, 'records': records}, indent=1, default=float) + '\n'
    )
    plot_marginals(samples, output / f'ecommerce{suffix}_marginals.png')
    print(f"Wrote {output / f'ecommerce{suffix}.md'}")


if __name__ == '__main__':
    main()
