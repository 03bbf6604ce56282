"""The ``llmsynthor`` command: validate, derive, synthesize, report, populationsim.

Progress goes to stderr, results to stdout or files. Bad input (a missing file, an invalid spec,
an unknown column, a bad option) exits with status 2 and a one-line reason, never a traceback;
set ``LLMSYNTHOR_DEBUG=1`` to see tracebacks of unexpected errors.

Examples::

    llmsynthor validate specs/examples/ecommerce.json --metadata metadata/ecommerce.json
    llmsynthor derive data.csv --metadata metadata.json -o spec.json --joints age,gender
    llmsynthor synthesize --metadata metadata/ecommerce.json --spec specs/examples/ecommerce.json \\
        --llm local --planner anchored -n 2000 --seed 0 -o out/ecommerce.csv --report out/report
    llmsynthor report out/ecommerce.csv --spec specs/examples/ecommerce.json \\
        --metadata metadata/ecommerce.json -o out/report
    llmsynthor populationsim -c configs -d data -o output
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

#: LLM token budget of a fit with the embedded model when --budget-tokens is not given: the
#: 135M-parameter CPU model writes about 50 tokens per second on 2 cores, so this bounds its
#: share of a run to a few minutes; the statistical planner completes the rest.
DEFAULT_LOCAL_TOKEN_BUDGET = 10_000

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


def _eprint(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- loading inputs
def _require_file(path, what):
    if not Path(path).exists():
        raise CLIError(f'{what} {path}: no such file or directory')


def _load_metadata(path):
    from sdv.metadata import Metadata

    _require_file(path, 'metadata')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            metadata = Metadata.load_from_json(str(path))
            metadata.validate()
    except json.JSONDecodeError as error:
        raise CLIError(
            f'metadata {path}: not valid JSON ({error.msg} at line {error.lineno})') from None
    except Exception as error:  # noqa: BLE001 - SDV raises several kinds; report the first line
        raise CLIError(f'metadata {path}: {_first_line(error)}') from error
    return metadata


def _first_line(error):
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and lines[0].endswith(':'):
        return f'{lines[0]} {lines[1]}'
    return lines[0]


def _spec_error(path, error):
    problems = getattr(error, 'problems', None) or [('$', str(error))]
    where, message = problems[0]
    more = len(problems) - 1
    suffix = f' ({more} more; run `llmsynthor validate`)' if more else ''
    return CLIError(f'invalid spec {path}: {where}: {message}{suffix}')


def _load_spec(path, metadata, list_problems=False):
    from sdv_llmsynthor.errors import SpecValidationError
    from sdv_llmsynthor.spec import MacroSpec

    _require_file(path, 'spec')
    try:
        spec = MacroSpec.load(path)
        spec.validate(metadata)
    except SpecValidationError as error:
        if not list_problems:
            raise _spec_error(path, error) from error
        # `llmsynthor validate`: every problem on stdout, then the one-line reason.
        for where, message in error.problems:
            print(f'{where}: {message}')
        raise CLIError(
            f'invalid spec {path}: {len(error.problems)} problem(s) listed above') from None
    return spec


def _read_table(path, table_name, metadata):
    import pandas as pd

    _require_file(path, 'data')
    columns = metadata.tables[table_name].columns
    dtypes = {name: str for name, info in columns.items()
              if info.get('sdtype') in ('datetime', 'id') and 'regex_format' in info}
    encoding = 'utf-8'
    try:
        frame = pd.read_csv(path, dtype=dtypes, encoding=encoding)
    except UnicodeDecodeError:
        frame = pd.read_csv(path, dtype=dtypes, encoding='latin-1')
    except pd.errors.ParserError as error:
        raise CLIError(f'data {path}: not a readable CSV ({_first_line(error)})') from error
    unknown = [column for column in frame.columns if column not in columns]
    if unknown:
        raise CLIError(
            f"{path}: unknown column '{unknown[0]}' (not in the metadata of table "
            f"'{table_name}'; columns: {', '.join(columns)})"
        )
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise CLIError(f"{path}: missing column '{missing[0]}' of table '{table_name}'")
    for name, info in columns.items():
        if info.get('sdtype') == 'boolean' and frame[name].dtype == object:
            lowered = frame[name].astype(str).str.lower()
            if set(lowered.dropna().unique()) <= {'true', 'false', 'nan'}:
                frame[name] = lowered.map({'true': True, 'false': False})
    return frame


def _read_data(path, metadata):
    """A CSV for one table, or a folder of ``<table>.csv`` files for several."""
    path = Path(path)
    tables = list(metadata.tables)
    if path.is_dir():
        data = {}
        for table in tables:
            file_path = path / f'{table}.csv'
            if not file_path.exists():
                raise CLIError(f'data {path}: no {table}.csv for table {table!r}')
            data[table] = _read_table(file_path, table, metadata)
        return data
    if len(tables) != 1:
        raise CLIError(
            f'data {path}: the metadata has tables {tables}; pass a folder holding one CSV per '
            'table (<table>.csv)'
        )
    return {tables[0]: _read_table(path, tables[0], metadata)}


def _parse_joints(values, metadata):
    if not values:
        return 'auto'
    if len(values) == 1 and values[0].lower() in ('none', 'no'):
        return None
    known = {column for table in metadata.tables.values() for column in table.columns}
    joints = []
    for value in values:
        group = [column.strip() for column in value.split(',') if column.strip()]
        if len(group) < 2:
            raise CLIError(f"--joints {value!r}: a joint needs two or more columns (a,b)")
        for column in group:
            if column not in known:
                raise CLIError(f"--joints: unknown column '{column}'; columns: "
                               f"{', '.join(sorted(known))}")
        joints.append(group)
    return joints


# ---------------------------------------------------------------------- subcommands
def _cmd_validate(args):
    metadata = _load_metadata(args.metadata)
    spec = _load_spec(args.spec, metadata, list_problems=True)
    statistics = sum(len(table.statistics) for table in spec.tables.values())
    rules = sum(len(table.rules) for table in spec.tables.values())
    print(f'{args.spec}: valid ({len(spec.tables)} table(s), {statistics} statistics, '
          f'{rules} rules)')
    return EXIT_OK


def _cmd_derive(args):
    from sdv_llmsynthor.spec import MacroSpec

    metadata = _load_metadata(args.metadata)
    joints = _parse_joints(args.joints, metadata)
    data = _read_data(args.data, metadata)
    _eprint(f'llmsynthor: deriving a spec from {sum(len(f) for f in data.values())} rows')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            metadata.validate_data(data)
    except Exception as error:  # noqa: BLE001 - SDV's InvalidDataError and friends
        raise CLIError(f'data {args.data}: {_first_line(error)}') from error
    try:
        spec = MacroSpec.from_data(data if len(data) > 1 else next(iter(data.values())),
                                   metadata, joints=joints, num_main_bins=args.bins,
                                   num_sub_bins=args.sub_bins, name=args.name,
                                   context=args.context)
    except (ValueError, KeyError) as error:
        raise CLIError(f'derive: {_first_line(error)}') from error
    output = Path(args.output)
    if output.parent and not output.parent.exists():
        output.parent.mkdir(parents=True, exist_ok=True)
    spec.save(output)
    statistics = sum(len(table.statistics) for table in spec.tables.values())
    print(f'wrote {output} ({len(spec.tables)} table(s), {statistics} statistics)')
    return EXIT_OK


def _write_output(data, output, multi):
    output = Path(output)
    if multi:
        output.mkdir(parents=True, exist_ok=True)
        paths = []
        for table, frame in data.items():
            path = output / f'{table}.csv'
            frame.to_csv(path, index=False)
            paths.append(path)
        return paths
    frame = next(iter(data.values()))
    if output.suffix.lower() != '.csv' and (output.is_dir() or not output.suffix):
        output.mkdir(parents=True, exist_ok=True)
        output = output / f'{next(iter(data))}.csv'
    elif output.parent and not output.parent.exists():
        output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    return [output]


def _uses_embedded_model(llm):
    if llm is not None:
        return str(llm).strip() == 'local'
    return not any(os.environ.get(name) for name in (
        'LLMSYNTHOR_BASE_URL', 'LLMSYNTHOR_MODEL', 'OPENAI_API_KEY'))


def _cmd_synthesize(args):
    from sdv_llmsynthor.synthesizers import (
        LLMSynthorMultiTableSynthesizer,
        LLMSynthorSynthesizer,
    )

    metadata = _load_metadata(args.metadata)
    spec = _load_spec(args.spec, metadata)
    multi = len(metadata.tables) > 1
    if args.num_rows is not None and args.num_rows < 1:
        raise CLIError(f'-n/--num-rows must be a positive integer, got {args.num_rows}')
    if args.scale is not None and args.scale <= 0:
        raise CLIError(f'--scale must be > 0, got {args.scale}')
    if args.num_rows is None and args.scale is None:
        parents = [rel.parent_table for rel in spec.relationships] or list(spec.tables)
        if spec.tables[parents[0]].num_rows is None:
            raise CLIError('-n/--num-rows is required (the spec gives no num_rows)')
    llm = args.llm
    if llm is not None and args.planner == 'statistical':
        _eprint('llmsynthor: --llm is ignored by the statistical planner')
    budget = args.budget_tokens
    if budget is None and args.planner != 'statistical' and _uses_embedded_model(llm):
        budget = DEFAULT_LOCAL_TOKEN_BUDGET
        _eprint(f'llmsynthor: embedded model: LLM budget {budget:,} tokens (--budget-tokens to '
                'change); the statistical planner completes the rest')
    common = dict(spec=spec, llm=llm, planner=args.planner, pool_factor=args.pool_factor,
                  max_iterations=args.max_iterations, token_budget=budget,
                  checkpoint_dir=args.resume, cache_dir=args.cache_dir, seed=args.seed,
                  verbose=not args.quiet)
    started = time.perf_counter()
    if multi:
        fit_rows = args.num_rows if args.scale is None else None
        synthesizer = LLMSynthorMultiTableSynthesizer(metadata, num_rows=fit_rows, **common)
    else:
        fit_rows = args.num_rows
        if fit_rows is None and args.scale is not None:
            fit_rows = max(1, round(args.scale * spec.tables[next(iter(spec.tables))].num_rows))
        synthesizer = LLMSynthorSynthesizer(metadata, num_rows=fit_rows, **common)
    _eprint(f'llmsynthor: fitting on {args.spec} (planner {args.planner}, seed {args.seed}'
            + (f', checkpoints in {args.resume}' if args.resume else '') + ')')
    synthesizer.fit()
    fit_seconds = time.perf_counter() - started
    _eprint(f'llmsynthor: fit done in {fit_seconds:.1f} s; sampling')
    if multi:
        data = synthesizer.sample(scale=args.scale) if args.scale is not None else (
            synthesizer.sample(num_rows=args.num_rows))
    else:
        data = synthesizer.sample(num_rows=fit_rows or synthesizer._fit_units)
    paths = _write_output(data, args.output, multi)
    seconds = time.perf_counter() - started
    usage = synthesizer.get_usage()
    rows = ', '.join(f'{table}: {len(frame):,} rows' for table, frame in data.items())
    print(f"wrote {', '.join(str(p) for p in paths)} ({rows}) in {seconds:.1f} s; "
          f"LLM calls {usage['llm_calls']}, tokens "
          f"{usage['prompt_tokens'] + usage['completion_tokens']:,}")
    if args.report:
        from sdv_llmsynthor.evaluation.fidelity import fidelity_report

        report = fidelity_report(spec, data if multi else next(iter(data.values())), metadata,
                                 run=synthesizer, output_dir=args.report)
        print(f"report {args.report}/report.md: {report.summary()['statistics']} statistics, "
              f'{_fidelity_summary(report)}')
    return EXIT_OK


def _fidelity_summary(report):
    summary = report.summary()
    return (f"mean TVD {summary['mean_tvd']:.4f}, max TVD {summary['max_tvd']:.4f}, "
            f"{summary['met']:.0%} within tolerance")


def _cmd_report(args):
    from sdv_llmsynthor.evaluation.fidelity import fidelity_report

    metadata = _load_metadata(args.metadata)
    spec = _load_spec(args.spec, metadata)
    synthetic = _read_data(args.output_data, metadata)
    report = fidelity_report(spec, synthetic, metadata, output_dir=args.output)
    frame = report.to_frame()
    columns = ['table', 'statistic', 'kind', 'tvd', 'max_abs_error', 'wasserstein', 'met']
    print(frame[columns].to_string(index=False, float_format=lambda v: f'{v:.4f}'))
    print(f"{report.summary()['statistics']} statistics: {_fidelity_summary(report)}")
    if args.real:
        from sdv_llmsynthor.evaluation.sdmetrics_reports import run_sdmetrics_reports

        real = _read_data(args.real, metadata)
        _eprint('llmsynthor: running SDMetrics quality and diagnostic reports')
        result = run_sdmetrics_reports(real, synthetic, metadata, output_dir=args.output)
        print(f'SDMetrics quality score {result.quality_score:.4f}, diagnostic score '
              f'{result.diagnostic_score:.4f}')
    if args.output:
        print(f'wrote {args.output}/report.md')
    return EXIT_OK


def _cmd_populationsim(args):
    from sdv_llmsynthor.geo import synthesize_population
    from sdv_llmsynthor.spec.populationsim import load_populationsim, write_populationsim_outputs

    for folder, what in ((args.configs, 'configs'), (args.data, 'data')):
        if not Path(folder).is_dir():
            raise CLIError(f'{what} folder not found: {folder}')
    started = time.perf_counter()
    project = load_populationsim(args.configs, args.data)
    for reason, count in project.dropped.items():
        _eprint(f'llmsynthor: dropped {count} {reason} (as PopulationSim does)')
    seeds = (None, None) if args.without_seeds else (project.households, project.persons)
    sharded = (args.workers is not None or args.scheduler is not None or args.parquet
               or args.shard_level is not None)
    if sharded and args.lower_bounds:
        raise CLIError('--lower-bounds runs in this process only: drop --workers, '
                       '--scheduler, --shard-level and --parquet.')
    if sharded:
        from sdv_llmsynthor.geo.shards import synthesize_population_sharded

        result = synthesize_population_sharded(
            project.spec, project.metadata, *seeds, output_dir=Path(args.output) / 'parquet',
            weight_column=project.weight_column, shard_level=args.shard_level,
            scheduler_address=args.scheduler, n_workers=args.workers, seed=args.seed,
            borrow=args.borrow_price, error_scale=args.error_scale, verbose=not args.quiet)
        households = result.manifest['households']
        borrowed = result.manifest['borrowed_households']
        persons = sum((shard['rows'] or {}).get('persons', 0)
                      for shard in result.manifest['shards'] if shard['rows'])
    else:
        result = synthesize_population(
            project.spec, project.metadata, *seeds, weight_column=project.weight_column,
            seed=args.seed, borrow=args.borrow_price, error_scale=args.error_scale,
            lower_bounds=args.lower_bounds, verbose=not args.quiet)
        households = len(result.tables['households'])
        persons = len(result.tables['persons'])
        borrowed = result.borrowed
    if args.parquet:
        paths = {'parquet': Path(args.output) / 'parquet'}
    else:
        paths = write_populationsim_outputs(result, project, args.output)
    summary = result.summary()
    own = summary[~summary['aggregated']]
    summary.to_csv(Path(args.output) / 'summary_controls.csv', index=False)
    print(f'{households:,} households and {persons:,} persons in '
          f'{len(project.spec.geography.rows):,} zones, '
          f'{time.perf_counter() - started:.1f} s ({borrowed:,} households copied from '
          f'another seed zone); files in {args.output}:')
    for path in paths.values():
        print(f'  {path.name}{"/" if path.is_dir() else ""}')
    print('control                       level      zones  %RMSE  max|diff|  cells met')
    for row in own.itertuples():
        print(f'{row.statistic:<29} {row.level:<10} {row.zones:>5}  {row.pct_rmse:5.1f}  '
              f'{row.max_abs_difference:9.0f}  {row.share_met:8.0%}')
    bounds = getattr(result, 'bounds', None)
    if bounds is not None:
        bounds.to_csv(Path(args.output) / 'zone_bounds.csv', index=False)
        infeasible = int((bounds['lower_bound'] > 1e-9).sum())
        objective, bound = bounds['objective'].sum(), bounds['lower_bound'].sum()
        print(f'{infeasible:,} of {len(bounds):,} lowest zones cannot meet their own controls '
              f'with this library (lower bound > 0); own-level weighted error {objective:.4g}, '
              f"the bound {bound:.4g} (zone_bounds.csv; bounds in "
              f"{result.seconds.get('bounds', 0.0):.1f} s)")
    return EXIT_OK


# ---------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """Print one line (plus the usage line) and exit with status 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f'{self.prog}: error: {message}\n')


def build_parser():
    """Return the ``llmsynthor`` argument parser.

    Returns:
        argparse.ArgumentParser
    """
    parser = _Parser(prog='llmsynthor', description=(
        'Macro-aligned synthetic micro-records for SDV: an LLM supplies realism, the engine '
        'matches your aggregates.'))
    sub = parser.add_subparsers(dest='command', parser_class=_Parser, metavar='COMMAND')
    sub.required = True

    validate = sub.add_parser('validate', help='check a spec against SDV metadata')
    validate.add_argument('spec', help='spec JSON file')
    validate.add_argument('--metadata', required=True, help='SDV metadata JSON file')

    derive = sub.add_parser('derive', help='derive a spec from real rows')
    derive.add_argument('data', help='a CSV (one table) or a folder of <table>.csv files')
    derive.add_argument('--metadata', required=True, help='SDV metadata JSON file')
    derive.add_argument('-o', '--output', required=True, help='spec JSON file to write')
    derive.add_argument('--joints', nargs='*', metavar='A,B',
                        help="joint statistics as comma-separated column groups (default: "
                             "chosen by mutual information; 'none' for none)")
    derive.add_argument('--bins', type=int, default=6, help='quantile main bins (default 6)')
    derive.add_argument('--sub-bins', type=int, default=8, help='sub-bins per bin (default 8)')
    derive.add_argument('--name', help='name stored in the spec')
    derive.add_argument('--context', help='free-text context stored in the spec')

    synthesize = sub.add_parser('synthesize', help='generate records that match a spec')
    synthesize.add_argument('--metadata', required=True, help='SDV metadata JSON file')
    synthesize.add_argument('--spec', required=True, help='spec JSON file')
    synthesize.add_argument('-n', '--num-rows', type=int,
                            help='rows (households for parent/child tables)')
    synthesize.add_argument('--scale', type=float,
                            help="parent/child: households relative to the spec's num_rows")
    synthesize.add_argument('-o', '--output', required=True,
                            help='CSV file (one table) or folder (parent/child tables)')
    synthesize.add_argument('--llm', help="'local' (embedded model) or 'openai:MODEL' "
                                          '(default: the environment, else local)')
    synthesize.add_argument('--planner', choices=['anchored', 'free', 'statistical'],
                            default='anchored', help='who proposes records (default anchored)')
    synthesize.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    synthesize.add_argument('--resume', metavar='DIR',
                            help='checkpoint folder: resume from it, or checkpoint into it')
    synthesize.add_argument('--budget-tokens', type=int,
                            help='LLM tokens the run may spend; then the statistical planner '
                                 'completes it (default: no limit; '
                                 f'{DEFAULT_LOCAL_TOKEN_BUDGET:,} with the embedded model)')
    synthesize.add_argument('--max-iterations', type=int, default=30,
                            help='iteration budget (default 30)')
    synthesize.add_argument('--pool-factor', type=float, default=1.2,
                            help='pool size relative to the request (default 1.2)')
    synthesize.add_argument('--cache-dir', help='LLM response cache folder')
    synthesize.add_argument('--report', metavar='DIR', help='write a fidelity report there')
    synthesize.add_argument('-q', '--quiet', action='store_true', help='no progress bar')

    report = sub.add_parser('report', help='fidelity of synthetic data to a spec')
    report.add_argument('output_data', metavar='OUT',
                        help='synthetic CSV (one table) or folder of <table>.csv files')
    report.add_argument('--spec', required=True, help='spec JSON file')
    report.add_argument('--metadata', required=True, help='SDV metadata JSON file')
    report.add_argument('--real', help='real data (CSV or folder): adds SDMetrics reports')
    report.add_argument('-o', '--output', metavar='DIR',
                        help='folder for report.md, statistics.csv and plots')

    populationsim = sub.add_parser(
        'populationsim', help='households and persons for every zone of a PopulationSim '
                              'configuration')
    populationsim.add_argument('-c', '--configs', required=True,
                               help='folder with settings.yaml and controls.csv')
    populationsim.add_argument('-d', '--data', required=True,
                               help='folder with seeds, crosswalk and control tables')
    populationsim.add_argument('-o', '--output', required=True,
                               help='folder for synthetic_households.csv, synthetic_persons.csv '
                                    'and summaries')
    populationsim.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    populationsim.add_argument('--workers', type=int,
                               help='zones in shards on a Dask LocalCluster of N workers '
                                    '(Parquet parts under OUTPUT/parquet, resumable)')
    populationsim.add_argument('--scheduler', metavar='ADDRESS',
                               help='run the shards on a Dask scheduler (tcp://host:8786)')
    populationsim.add_argument('--shard-level',
                               help='level whose zones are packed into shards (default: the '
                                    'highest whose zones fit 200,000 households)')
    populationsim.add_argument('--parquet', action='store_true',
                               help='write Parquet parts only (no CSV files)')
    populationsim.add_argument('--borrow-price', type=float, default=1.0,
                               help='price of a household from another seed zone, in counts '
                                    "of the lowest level's cheapest cell (default 1; 0: seed "
                                    'zones only, as PopulationSim)')
    # The choices are geo.engine.ERROR_SCALES, spelt out so that --help needs no numpy.
    populationsim.add_argument('--error-scale', choices=('rmse', 'relative', 'level', 'absolute'),
                               default='rmse',
                               help="how a count's error is weighed (default rmse: as it "
                                    "adds to its control's %%RMSE at its level; relative: "
                                    'alike in percent per zone and cell; level: mean share '
                                    'error per level, favouring upper levels most)')
    populationsim.add_argument('--lower-bounds', action='store_true',
                               help="bound each lowest zone's error on its own controls with "
                                    'this library (zone_bounds.csv; in this process only)')
    populationsim.add_argument('-q', '--quiet', action='store_true', help='no progress bars')
    populationsim.add_argument('--without-seeds', action='store_true',
                               help='ignore the seed sample: synthesise the candidate '
                                    'households from the controls (statistical planner)')
    return parser


_COMMANDS = {
    'validate': _cmd_validate,
    'derive': _cmd_derive,
    'synthesize': _cmd_synthesize,
    'report': _cmd_report,
    'populationsim': _cmd_populationsim,
}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from sdv_llmsynthor.errors import LLMSynthorWarning

    if issubclass(category, LLMSynthorWarning):
        _eprint(f'llmsynthor: warning: {message}')


def main(argv=None):
    """Run the ``llmsynthor`` command.

    Args:
        argv (list[str] or None):
            Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        int:
            0 on success, 2 on bad input, 1 on an unexpected error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)

    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        from sdv_llmsynthor.errors import LLMSynthorWarning

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            warnings.simplefilter('default', LLMSynthorWarning)
            warnings.showwarning = _show_warning
            return _COMMANDS[args.command](args)
    except CLIError as error:
        _eprint(f'llmsynthor: error: {error}')
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _eprint('llmsynthor: interrupted (a run with --resume DIR continues from its checkpoint)')
        return 130
    except Exception as error:  # noqa: BLE001 - one line, no traceback, unless debugging
        from sdv.errors import InvalidDataError, SynthesizerInputError

        from sdv_llmsynthor.errors import LLMSynthorError, SpecValidationError

        if os.environ.get('LLMSYNTHOR_DEBUG'):
            raise
        if isinstance(error, SpecValidationError):
            _eprint(f'llmsynthor: error: {_spec_error(getattr(args, "spec", ""), error)}')
            return EXIT_BAD_INPUT
        if isinstance(error, (LLMSynthorError, SynthesizerInputError, InvalidDataError,
                              FileNotFoundError)):
            _eprint(f'llmsynthor: error: {_first_line(error)}')
            return EXIT_BAD_INPUT
        _eprint(f'llmsynthor: internal error: {type(error).__name__}: {_first_line(error)} '
                '(set LLMSYNTHOR_DEBUG=1 for the traceback)')
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = previous


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
