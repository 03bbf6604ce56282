"""Behaviour shared by the single-table and parent/child LLMSynthor synthesizers."""

from __future__ import annotations

import copy
import datetime
import math
import warnings

import numpy as np

from sdv_llmsynthor.errors import LibraryTopUpWarning
from sdv_llmsynthor.planners.base import Planner
from sdv_llmsynthor.synthesizers._common import (
    LibraryPlanner,
    build_planner,
    format_table,
    infer_joints,
    install_constraints,
    load_spec,
    merge_usage,
    run_report_from_result,
)

#: Rows generated during ``fit(data)`` (to build the library) when ``num_rows`` is not given.
MAX_FIT_ROWS = 5000
#: Iteration budget of ``sample`` when lacking cells may be topped up by an LLM planner (above
#: the fit size): filling the pool from the library, then refinements and top-ups, whose
#: proposals an LLM may need more than one round to get valid.
SAMPLE_MAX_ITERATIONS = 8
#: Iteration budget of ``sample`` otherwise (library, or statistical top-ups, which are always
#: valid): the pool, then two refinements. Later ones added under 0.2% of the pool and left the
#: sample's fidelity as it was (evaluation/results/sample_speed.md).
SAMPLE_LIBRARY_ITERATIONS = 3


class LLMSynthorMixin:
    """Spec, planner, library, usage and pickling logic of the LLMSynthor synthesizers.

    It owns ``__init__`` (one signature for both synthesizers, which SDV's ``get_parameters``
    reads) and the ``fit`` template; each synthesizer supplies the SDV base-class call
    (:meth:`_init_sdv_base`) and the table-specific steps of ``fit`` (:meth:`_prepare_fit_data`
    and the optional hooks :meth:`_on_fit_without_data` and :meth:`_on_fit_loop_done`).
    """

    def __init__(self, metadata, spec=None, llm=None, planner='anchored', num_rows=None,
                 pool_factor=1.2, max_iterations=30, token_budget=None, checkpoint_dir=None,
                 cache_dir=None, seed=0, enforce_min_max_values=True, enforce_rounding=True,
                 locales=['en_US'], verbose=True):  # noqa: B006 - SDV's signature
        """Store every argument under its own name; nothing runs before ``fit``.

        The arguments are documented on each synthesizer class.
        """
        self._init_sdv_base(metadata, enforce_min_max_values=enforce_min_max_values,
                            enforce_rounding=enforce_rounding, locales=locales)
        self.spec = spec
        self.llm = llm
        self.planner = planner
        self.num_rows = num_rows
        self.pool_factor = pool_factor
        self.max_iterations = max_iterations
        self.token_budget = token_budget
        self.checkpoint_dir = checkpoint_dir
        self.cache_dir = cache_dir
        self.seed = seed
        self.enforce_min_max_values = enforce_min_max_values
        self.enforce_rounding = enforce_rounding
        self.verbose = verbose
        self._init_state()

    def _init_sdv_base(self, metadata, enforce_min_max_values, enforce_rounding, locales):
        """Run the SDV base class's ``__init__`` (its arguments differ per base class)."""
        raise NotImplementedError

    def _table_metadata(self, table_name=None):
        """The metadata dict of one table (the only table when ``table_name`` is None)."""
        if table_name is None:
            table_name = self._table_name
        return self._original_metadata.to_dict()['tables'][table_name]

    # ------------------------------------------------------------------ planner and LLM
    def _init_state(self):
        self._fitted_spec = None
        self._library = []
        self._fit_report = None
        self._sample_report = None
        self._usage = merge_usage(None, None)
        self._llm_info = {'model': None, 'backend': None}
        self._bounds = {}
        self._sample_calls = 0
        self._fit_units = None
        self._llm_replaced = False
        self._planner_cache = None

    def set_llm(self, llm):
        """Set the LLM used by the planner (e.g. after ``load``, since clients are never saved).

        Args:
            llm (LLMClient, str, dict or None):
                See ``sdv_llmsynthor.llm.resolve_llm``.
        """
        self.llm = llm
        self._llm_replaced = False
        self._planner_cache = None

    def _get_planner(self):
        """Return ``(planner, client)``, built once per live object."""
        from sdv.errors import SynthesizerInputError

        cached = getattr(self, '_planner_cache', None)
        if cached is not None:
            return cached
        if getattr(self, '_llm_replaced', False) and self.planner != 'statistical':
            raise SynthesizerInputError(
                'This synthesizer was saved with an LLM client object, which is never saved '
                f'(it may hold an API key); it was: {self.llm}. Call set_llm(...) first.'
            )
        planner, client = build_planner(self.planner, self.llm, self.cache_dir,
                                        self.token_budget)
        self._planner_cache = (planner, client)
        if client is not None:
            self._llm_info = {'model': getattr(client, 'model', None),
                              'backend': client.describe()}
        return planner, client

    def _resolve_fit_spec(self):
        from sdv.errors import SynthesizerInputError

        if self.spec is None:
            raise SynthesizerInputError(
                'fit() without data needs a spec: pass spec=... (a MacroSpec, a dict or the path '
                'of a spec JSON file) when creating the synthesizer, or call fit(data) to derive '
                'the spec from real rows.'
            )
        return copy.deepcopy(load_spec(self.spec))

    # ------------------------------------------------------------------ fit
    def fit_processed_data(self, processed_data):
        """Not supported: LLMSynthor learns from aggregates, not from processed rows.

        Raises:
            SynthesizerInputError: always.
        """
        from sdv.errors import SynthesizerInputError

        raise SynthesizerInputError(
            f'{type(self).__name__} does not fit processed data: call fit(data) or, with a '
            'spec, fit().'
        )

    def _prepare_fit_data(self, data):
        """Validate real rows and learn what formatting needs from them (``self._bounds``).

        Returns:
            tuple:
                The tables by name, and the number of real units (rows, or households) that
                ``num_rows`` defaults to.
        """
        raise NotImplementedError

    def _on_fit_without_data(self):
        """Called by ``fit()`` on a spec alone, once the spec is resolved."""

    def _on_fit_loop_done(self, loop):
        """Called once the fit loop has run, before the library is kept."""

    def _fit_llmsynthor(self, data):
        """The ``fit`` both synthesizers share: resolve or derive the spec, run the loop.

        Args:
            data (object or None):
                Real rows as the synthesizer's ``fit`` takes them, or None for the spec alone.
        """
        from sdv_llmsynthor.spec import MacroSpec

        self._fitted = False
        # A refit starts from fresh planner state (LLM planners keep completions between calls).
        self._planner_cache = None
        copula_usage = None
        if data is None:
            spec = self._resolve_fit_spec()
            num_rows = self.num_rows
            self._bounds = {}
            self._on_fit_without_data()
        else:
            data, real_units = self._prepare_fit_data(data)
            if self.spec is None:
                planner, client = self._get_planner()
                joints = 'auto'
                if getattr(planner, 'uses_llm', False):
                    joints, copula_usage = infer_joints(client, self._original_metadata, data,
                                                        seed=self.seed)
                spec = MacroSpec.from_data(data, self._original_metadata, joints=joints)
                num_rows = self.num_rows or min(real_units, MAX_FIT_ROWS)
            else:
                from sdv_llmsynthor.spec.validation import validate_spec_against_data

                spec = self._resolve_fit_spec()
                num_rows = self.num_rows
                spec.validate(self._original_metadata)
                validate_spec_against_data(spec, self._original_metadata, data)
            # The rows are not needed any more: drop every reference before the loop runs.
            data = None
        spec.validate(self._original_metadata)
        loop, result = self._run_fit_loop(spec, num_rows)
        self._on_fit_loop_done(loop)
        self._finish_fit(spec, loop, result, copula_usage)

    # ------------------------------------------------------------------ the loop
    def _make_loop(self, spec, planner, num_rows, seed, metadata=None, **kwargs):
        from sdv_llmsynthor.core.loop import SynthesisLoop

        metadata = self._original_metadata if metadata is None else metadata
        loop = SynthesisLoop(spec, metadata, planner, num_rows=num_rows,
                             pool_factor=self.pool_factor, seed=int(seed), **kwargs)
        constraints = {table: items for table, items in self._constraints_by_table().items()
                       if table in metadata.tables}
        install_constraints(loop, constraints, metadata)
        return loop

    def _run_fit_loop(self, spec, num_rows, seed=None, metadata=None, checkpoint_dir=None):
        planner, _ = self._get_planner()
        loop = self._make_loop(
            spec, planner, num_rows, self.seed if seed is None else seed, metadata=metadata,
            max_iterations=self.max_iterations,
            checkpoint_dir=self.checkpoint_dir if checkpoint_dir is None else checkpoint_dir,
            progress=bool(self.verbose),
        )
        result = loop.run()
        return loop, result

    def _finish_fit(self, spec, loop, result, extra_usage=None):
        from sdv import version

        from sdv_llmsynthor.synthesizers._common import library_from_result

        self._fitted_spec = spec
        self._library = library_from_result(result)
        self._library_index_cache = {}
        self._fit_report = run_report_from_result(result, 'fit')
        self._fit_report['library_size'] = len(self._library)
        self._usage = merge_usage(extra_usage, result.usage)
        self._fit_units = int(loop.requested)
        self._sample_report = None
        self._fitted = True
        self._fitted_date = datetime.datetime.today().strftime('%Y-%m-%d')
        self._fitted_sdv_version = getattr(version, 'community', None)
        self._fitted_sdv_enterprise_version = getattr(version, 'enterprise', None)
        self._sample_calls = 0

    def _next_sample_seed(self):
        sequence = np.random.SeedSequence([int(self.seed), 1, int(self._sample_calls)])
        self._sample_calls += 1
        return int(sequence.generate_state(1)[0])

    def _planner_uses_llm(self):
        """Whether the synthesizer's planner calls an LLM (without building it)."""
        if isinstance(self.planner, Planner):
            return bool(getattr(self.planner, 'uses_llm', False))
        return self.planner != 'statistical'

    def _fallback_factory(self):
        def factory():
            try:
                planner, _ = self._get_planner()
            except Exception as error:  # noqa: BLE001 - no planner: calibrate with the library
                warnings.warn(
                    f'The library lacks cells the targets need but no planner is available to '
                    f'top it up ({error}); calibrating with the library alone.',
                    LibraryTopUpWarning, stacklevel=4,
                )
                return None
            return planner

        return factory

    def _draw_from_library(self, num_units, table_name=None, spec=None, library=None,
                           fit_units=None, metadata=None):
        """Run the loop with the library planner at ``num_units`` rows (households).

        ``spec``, ``library``, ``fit_units`` and ``metadata`` default to the synthesizer's own
        (a tree of tables passes those of one edge).
        """
        spec = self._fitted_spec if spec is None else spec
        library = self._library if library is None else library
        fit_units = self._fit_units if fit_units is None else fit_units
        # At or below the fit size every cell the targets need was already needed (and tried)
        # in fit, so the library is all there is; only a larger request can reveal cells too
        # small to have appeared at the fit size, and only those justify new planner calls.
        fallback = self._fallback_factory() if num_units > (fit_units or 0) else None
        if getattr(self, '_library_index_cache', None) is None:
            self._library_index_cache = {}
        library_planner = LibraryPlanner(library, fallback=fallback,
                                         index_cache=self._library_index_cache)
        pool_target = int(math.ceil(self.pool_factor * num_units))
        loop = self._make_loop(
            spec, library_planner, num_units, self._next_sample_seed(), metadata=metadata,
            max_iterations=(SAMPLE_MAX_ITERATIONS if fallback and self._planner_uses_llm()
                            else SAMPLE_LIBRARY_ITERATIONS),
            batch_rows=pool_target,
            progress=bool(self.verbose) and num_units >= 100_000,
            max_empty_iterations=2, patience=2,
            calibration_seconds=max(30.0, 20.0 * num_units / 1_000_000),
            table_name=table_name,
            stop_when_covered=True,
        )
        result = loop.run()
        fallback = library_planner.fallback
        uses_llm = isinstance(fallback, Planner) and getattr(fallback, 'uses_llm', False)
        if library_planner.lacking and uses_llm:
            warnings.warn(
                f'The library learned in fit() lacks {len(library_planner.lacking)} cells the '
                f'targets need at num_rows={num_units}; topping up with '
                f'{library_planner.fallback_calls} LLM calls.',
                LibraryTopUpWarning, stacklevel=3,
            )
        report = run_report_from_result(result, 'sample')
        report['lacking_cells'] = len(library_planner.lacking)
        report['top_up_llm_calls'] = int(library_planner.fallback_calls)
        self._sample_report = report
        self._usage = merge_usage(self._usage, result.usage)
        return result

    # ------------------------------------------------------------------ sample
    def reset_sampling(self):
        """Reset sampling: the next ``sample`` calls repeat those made right after ``fit``."""
        self._sample_calls = 0

    def _format_sample(self, frames, keys, bounds):
        """Give every sampled table its metadata's columns, dtypes, rounding and ranges.

        Args:
            frames (dict[str, pandas.DataFrame]):
                The calibrated records by table.
            keys (dict[str, set]):
                Per table, the key columns already consistent (kept as they are).
            bounds (dict[str, dict]):
                Per table, the bounds learned from real rows (see ``learn_bounds``).

        Returns:
            dict[str, pandas.DataFrame]
        """
        return {
            table: format_table(
                frame, self._table_metadata(table), bounds=bounds.get(table, {}),
                enforce_rounding=self.enforce_rounding,
                enforce_min_max_values=self.enforce_min_max_values, locales=self.locales,
                keys=keys.get(table, set()),
            )
            for table, frame in frames.items()
        }

    @staticmethod
    def _write_sample(tables, output_paths):
        """Write each table to its path from ``validate_folder_path_with_table_names``."""
        for frame, path in zip(tables.values(), output_paths or []):
            if path:
                frame.to_csv(path, index=False)

    # ------------------------------------------------------------------ public helpers
    def get_spec(self):
        """Return the spec the synthesizer was fitted on (or was given, before ``fit``).

        Returns:
            MacroSpec or None
        """
        if self._fitted_spec is not None:
            return self._fitted_spec
        if self.spec is None:
            return None
        return load_spec(self.spec)

    def get_usage(self):
        """Return the LLM usage of ``fit`` and every ``sample`` since.

        Returns:
            dict:
                ``llm_calls``, ``prompt_tokens``, ``completion_tokens``, ``cached_calls``,
                ``discarded`` (per reason) and ``model`` (None without an LLM).
        """
        usage = copy.deepcopy(self._usage)
        usage['model'] = self._llm_info.get('model')
        return usage

    def get_run_report(self, phase='fit'):
        """Return what the fit run (or the last ``sample``) reported.

        Args:
            phase (str):
                ``'fit'`` (default) or ``'sample'``.

        Returns:
            dict:
                ``history`` (DataFrame, one row per iteration), ``rejections`` (DataFrame:
                table, rule, checked, rejected, rate), ``unmet`` (DataFrame of statistics
                outside tolerance and why), ``statistics`` (final TVD per statistic),
                ``usage``, ``stopped_by``, ``calibration``, ``warnings`` and, for the fit,
                ``library_size``. None before ``fit``.
        """
        if phase not in ('fit', 'sample'):
            raise ValueError(f"The 'phase' parameter must be 'fit' or 'sample'. Got {phase!r}.")
        report = self._fit_report if phase == 'fit' else self._sample_report
        if report is None:
            return None
        report = dict(report)
        report['discarded'] = dict(self._usage.get('discarded', {}))
        return report

    def get_library(self):
        """Return the library of proposals learned in ``fit`` (a DataFrame, one row each).

        Returns:
            pandas.DataFrame:
                ``source``, ``reason``, ``count``, ``accepted``, ``selected``,
                ``assignments`` (and ``children`` for households).
        """
        import pandas as pd

        return pd.DataFrame(copy.deepcopy(self._library))

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        """Return the state to save: never an LLM client, an API key or a planner."""
        state = self.__dict__.copy()
        state['_planner_cache'] = None
        state['_library_index_cache'] = None
        llm = state.get('llm')
        if llm is not None and not isinstance(llm, (str, dict)):
            describe = getattr(llm, 'describe', None)
            state['llm'] = describe() if callable(describe) else type(llm).__name__
            state['_llm_replaced'] = True
        elif isinstance(llm, dict):
            state['llm'] = {key: value for key, value in llm.items() if key != 'api_key'}
        planner = state.get('planner')
        if isinstance(planner, Planner):
            state['planner'] = getattr(planner, 'name', type(planner).__name__)
            if getattr(planner, 'uses_llm', False):
                state['_llm_replaced'] = True
        return state

    def __setstate__(self, state):
        """Restore a saved synthesizer."""
        self.__dict__.update(state)
        self._planner_cache = None

    @classmethod
    def load(cls, filepath):
        """Load a synthesizer saved with :meth:`save` (``sdv.utils.load_synthesizer``).

        Args:
            filepath (str):
                The file.

        Returns:
            The synthesizer.
        """
        from sdv.utils import load_synthesizer

        synthesizer = load_synthesizer(filepath)
        if not isinstance(synthesizer, cls):
            raise TypeError(
                f"The file '{filepath}' holds a {type(synthesizer).__name__}, not a "
                f'{cls.__name__}.'
            )
        return synthesizer
