"""``LLMSynthorMultiTableSynthesizer``: households and persons behind SDV's multi-table API."""

from __future__ import annotations

import math

from sdv.cag._utils import _validate_constraints
from sdv.cag.programmable_constraint import ProgrammableConstraint, ProgrammableConstraintHarness
from sdv.errors import SamplingError, SynthesizerInputError
from sdv.multi_table.base import BaseMultiTableSynthesizer
from sdv.single_table.utils import validate_folder_path_with_table_names

from sdv_llmsynthor.synthesizers._common import format_table, infer_joints, learn_bounds
from sdv_llmsynthor.synthesizers._mixin import MAX_FIT_ROWS, LLMSynthorMixin

__all__ = ['LLMSynthorMultiTableSynthesizer']


class LLMSynthorMultiTableSynthesizer(LLMSynthorMixin, BaseMultiTableSynthesizer):
    """Parent/child tables (households and their persons) aligned with household-level,
    person-level and cross-table statistics at once.

    A household is generated with all its persons as one unit: the planner proposes (and the
    LLM writes) the whole household, validity rules reject whole households (a couple without
    two adults, a member count that does not match the household size), and the calibration
    selects whole households. The child-count distribution, household statistics, person
    statistics and cross-table statistics (derived parent columns such as "has a person aged
    65+") are all targets of the same calibration. Keys are sequential and consistent.

    It subclasses SDV's ``BaseMultiTableSynthesizer`` (metadata validation, ``get_metadata``,
    ``get_parameters``, ``save``, ``validate``) and replaces fitting and sampling. It handles
    metadata with one parent table and one child table.

    Args:
        metadata (sdv.metadata.Metadata):
            Two tables and the relationship between them.
        spec (MacroSpec, dict, str or None):
            The targets (see ``specs/README.md``); when None, ``fit(data)`` derives them.
        llm (LLMClient, str, dict or None):
            The LLM (see :class:`~sdv_llmsynthor.synthesizers.LLMSynthorSynthesizer`).
        planner (str or Planner):
            ``'anchored'`` (default), ``'free'``, ``'statistical'`` or a ``Planner``.
        num_rows (int or None):
            Households generated during ``fit`` (the size ``scale=1.0`` refers to). Defaults
            to the spec's parent ``num_rows``, or the number of real households (at most 5,000).
        pool_factor (float):
            Pool size relative to the request, before calibration. Defaults to 1.2.
        max_iterations (int):
            Iteration budget of the fit loop. Defaults to 30.
        token_budget (int or None):
            LLM tokens one run may spend before the statistical planner takes over (see
            :class:`~sdv_llmsynthor.synthesizers.LLMSynthorSynthesizer`).
        checkpoint_dir (str or None):
            Checkpoint folder of the fit loop (a rerun resumes from it).
        cache_dir (str or None):
            Folder of the LLM response cache.
        seed (int):
            Seed of every random draw. Defaults to 0.
        enforce_min_max_values (bool):
            Clip numerical columns to the metadata's (or real rows') range. Defaults to True.
        enforce_rounding (bool):
            Round numerical columns to their decimals. Defaults to True.
        locales (list or str):
            Faker locales for PII columns. Defaults to ``['en_US']``.
        verbose (bool):
            Show a progress bar while fitting. Defaults to True.
    """

    def __init__(self, metadata, spec=None, llm=None, planner='anchored', num_rows=None,
                 pool_factor=1.2, max_iterations=30, token_budget=None, checkpoint_dir=None,
                 cache_dir=None, seed=0, enforce_min_max_values=True, enforce_rounding=True,
                 locales=['en_US'], verbose=True):  # noqa: B006 - SDV's signature
        super().__init__(metadata, locales=locales)
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
        self._table_constraints = {}
        self._mean_children = None
        self._init_state()

    # ------------------------------------------------------------------ helpers
    def _relationship(self):
        relationships = self._original_metadata.to_dict().get('relationships', [])
        tables = list(self._original_metadata.tables)
        if len(relationships) != 1 or len(tables) != 2:
            raise SynthesizerInputError(
                'LLMSynthorMultiTableSynthesizer handles one parent table with one child table '
                f'(households and persons); the metadata has tables {tables} and '
                f'{len(relationships)} relationship(s).'
            )
        return relationships[0]

    def _constraints_by_table(self):
        return {table: list(items) for table, items in self._table_constraints.items()}

    def _table_metadata(self, table):
        return self._original_metadata.to_dict()['tables'][table]

    # ------------------------------------------------------------------ constraints
    def add_constraints(self, constraints):
        """Add single-table SDV constraints (each with ``table_name``), enforced by rejection.

        Every generated household's rows are checked with each constraint's ``is_valid``; a
        household with an invalid row is rejected whole and counted in the rejection table.

        Args:
            constraints (list):
                SDV constraint objects with ``table_name`` set.
        """
        constraints = _validate_constraints(constraints, self._fitted)
        for constraint in constraints:
            if isinstance(constraint, ProgrammableConstraint):
                constraint = ProgrammableConstraintHarness(constraint)
            table = getattr(constraint, 'table_name', None)
            if not getattr(constraint, '_is_single_table', True) or table is None:
                raise SynthesizerInputError(
                    f"The '{type(constraint).__name__}' constraint must be a single-table "
                    "constraint with its 'table_name' set."
                )
            if table not in self._original_metadata.tables:
                raise SynthesizerInputError(f"Table '{table}' is not present in the metadata.")
            constraint.get_updated_metadata(self._original_metadata)
            self._table_constraints.setdefault(table, []).append(constraint)

    def get_constraints(self, filepath=None):
        """Return the constraints added with :meth:`add_constraints`."""
        constraints = [c for items in self._table_constraints.values() for c in items]
        if filepath is None:
            return list(constraints)
        return super().get_constraints(filepath)

    # ------------------------------------------------------------------ fit
    def fit_processed_data(self, processed_data):
        """Not supported: LLMSynthor learns from aggregates.

        Raises:
            SynthesizerInputError: always.
        """
        raise SynthesizerInputError(
            'LLMSynthorMultiTableSynthesizer does not fit processed data: call fit(data) or, '
            'with a spec, fit().'
        )

    def fit(self, data=None):
        """Run the household synthesis loop and keep its library of household proposals.

        Args:
            data (dict[str, pandas.DataFrame] or None):
                Real tables by name. When given without a spec, the spec is derived from them
                (child counts, marginals, joints, cross-table derived columns); the rows are
                validated, used, then dropped. When None, the spec given at creation is used.
        """
        from sdv_llmsynthor.spec import MacroSpec

        self._check_metadata_updated()
        self._fitted = False
        # A refit starts from fresh planner state (LLM planners keep completions between calls).
        self._planner_cache = None
        relationship = self._relationship()
        parent = relationship['parent_table_name']
        if data is not None:
            if not isinstance(data, dict):
                raise SynthesizerInputError(
                    'The `data` parameter must be a dictionary mapping each table name to its '
                    f'DataFrame. Got {type(data).__name__} instead.'
                )
            self.validate(data)
            for constraints in self._table_constraints.values():
                for constraint in constraints:
                    constraint.fit(data=data, metadata=self._original_metadata)
            self._bounds = {
                table: learn_bounds(frame, self._table_metadata(table))
                for table, frame in data.items()
            }
            copula_usage = None
            if self.spec is None:
                planner, client = self._get_planner()
                joints = 'auto'
                if getattr(planner, 'uses_llm', False):
                    joints, copula_usage = infer_joints(client, self._original_metadata, data,
                                                        seed=self.seed)
                spec = MacroSpec.from_data(data, self._original_metadata, joints=joints)
                num_rows = self.num_rows or min(len(data[parent]), MAX_FIT_ROWS)
            else:
                spec = self._resolve_fit_spec()
                num_rows = self.num_rows
            data = None
        else:
            spec = self._resolve_fit_spec()
            num_rows = self.num_rows
            self._bounds = {}
            copula_usage = None
        spec.validate(self._original_metadata)
        loop, result = self._run_fit_loop(spec, num_rows)
        self._mean_children = float(getattr(loop, 'mean_children', 1.0))
        self._finish_fit(spec, loop, result, copula_usage)

    # ------------------------------------------------------------------ sample
    def reset_sampling(self):
        """Reset sampling: the next ``sample`` calls repeat those made right after ``fit``."""
        self._sample_calls = 0

    def _households_for(self, num_rows, main_table_name, scale):
        relationship = self._relationship()
        parent = relationship['parent_table_name']
        child = relationship['child_table_name']
        if num_rows is not None:
            if isinstance(num_rows, bool) or not float(num_rows).is_integer() or num_rows < 1:
                raise SynthesizerInputError(
                    f"Invalid parameter for 'num_rows' ({num_rows}). Please provide an integer "
                    'that is greater than 0.'
                )
            table = main_table_name or parent
            if table == parent:
                return int(num_rows)
            if table == child:
                return max(1, int(math.ceil(num_rows / max(self._mean_children or 1.0, 1e-9))))
            raise SynthesizerInputError(f"Table '{table}' does not exist in the metadata.")
        scale = 1.0 if scale is None else scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise SynthesizerInputError(
                f"Invalid parameter for 'scale' ({scale}). Please provide a number that is >0.0."
            )
        return max(1, int(round(scale * self._fit_units)))

    def sample(self, num_rows=None, main_table_name=None, scale=None, batch_size=None,
               max_tries_per_batch=100, output_folder_path=None):
        """Sample households with all their persons, calibrated to every target at once.

        Give either ``scale`` (households relative to the fit size; the default is 1.0) or
        ``num_rows`` of ``main_table_name`` (SDV 2.x; the parent table by default; a child
        row count is converted to households with the mean household size). Sampling is done
        for the whole dataset at once (dataset-level alignment), so ``batch_size`` and
        ``max_tries_per_batch`` are ignored.

        Args:
            num_rows (int or None):
                Rows of ``main_table_name`` to sample.
            main_table_name (str or None):
                The table ``num_rows`` refers to.
            scale (float or None):
                Households relative to the fit size.
            batch_size (int or None):
                Ignored.
            max_tries_per_batch (int):
                Ignored.
            output_folder_path (str or None):
                Folder where ``<table>.csv`` files are written as well.

        Returns:
            dict[str, pandas.DataFrame]:
                Every table, with valid primary and foreign keys.
        """
        if not self._fitted:
            raise SamplingError(
                'This synthesizer has not been fitted. Please fit your synthesizer first before '
                'sampling synthetic data.'
            )
        households = self._households_for(num_rows, main_table_name, scale)
        tables = list(self._original_metadata.tables)
        output_paths = validate_folder_path_with_table_names(output_folder_path, tables)
        result = self._draw_from_library(households)
        relationship = self._relationship()
        keys = {relationship['parent_table_name']: {relationship['parent_primary_key']},
                relationship['child_table_name']: {relationship['child_foreign_key']}}
        out = {}
        for table in tables:
            table_metadata = self._table_metadata(table)
            table_keys = set(keys.get(table, set()))
            if table_metadata.get('primary_key'):
                table_keys.add(table_metadata['primary_key'])
            out[table] = format_table(
                result.data[table], table_metadata, bounds=self._bounds.get(table, {}),
                enforce_rounding=self.enforce_rounding,
                enforce_min_max_values=self.enforce_min_max_values, locales=self.locales,
                keys=table_keys,
            )
        if output_paths and output_paths[0] is not None:
            for table, path in zip(tables, output_paths):
                out[table].to_csv(path, index=False)
        return out

    def sample_scale(self, scale=1.0, batch_size=None, max_tries_per_batch=100,
                     output_folder_path=None):
        """Sample the whole dataset at ``scale`` times the fit size (see :meth:`sample`).

        Returns:
            dict[str, pandas.DataFrame]
        """
        return self.sample(scale=scale, output_folder_path=output_folder_path)

