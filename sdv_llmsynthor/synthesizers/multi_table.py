"""``LLMSynthorMultiTableSynthesizer``: households and persons behind SDV's multi-table API."""

from __future__ import annotations

import math

from sdv.cag._utils import _validate_constraints
from sdv.cag.programmable_constraint import ProgrammableConstraint, ProgrammableConstraintHarness
from sdv.errors import SamplingError, SynthesizerInputError
from sdv.multi_table.base import BaseMultiTableSynthesizer
from sdv.single_table.utils import validate_folder_path_with_table_names

from sdv_llmsynthor.synthesizers._common import is_whole_number, learn_bounds
from sdv_llmsynthor.synthesizers._mixin import LLMSynthorMixin

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

    # ``__init__`` is LLMSynthorMixin's: the signature above, every argument under its name.
    def _init_sdv_base(self, metadata, enforce_min_max_values, enforce_rounding, locales):
        # SDV's multi-table base takes no enforce_* arguments; the mixin stores them.
        BaseMultiTableSynthesizer.__init__(self, metadata, locales=locales)
        self._table_constraints = {}
        self._mean_children = None

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
    def fit(self, data=None):
        """Run the household synthesis loop and keep its library of household proposals.

        Args:
            data (dict[str, pandas.DataFrame] or None):
                Real tables by name. When given without a spec, the spec is derived from them
                (child counts, marginals, joints, cross-table derived columns); the rows are
                validated, used, then dropped. When None, the spec given at creation is used.
        """
        self._check_metadata_updated()
        self._relationship()
        self._fit_llmsynthor(data)

    def _prepare_fit_data(self, data):
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
        return data, len(data[self._relationship()['parent_table_name']])

    def _on_fit_loop_done(self, loop):
        self._mean_children = float(getattr(loop, 'mean_children', 1.0))

    # ------------------------------------------------------------------ sample
    def _households_for(self, num_rows, main_table_name, scale):
        relationship = self._relationship()
        parent = relationship['parent_table_name']
        child = relationship['child_table_name']
        if num_rows is not None:
            if not is_whole_number(num_rows) or num_rows < 1:
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
        for table in tables:
            primary_key = self._table_metadata(table).get('primary_key')
            keys[table] = set(keys.get(table, set())) | ({primary_key} - {None})
        sampled = self._format_sample({table: result.data[table] for table in tables}, keys,
                                      self._bounds)
        self._write_sample(sampled, output_paths)
        return sampled

    def sample_scale(self, scale=1.0, batch_size=None, max_tries_per_batch=100,
                     output_folder_path=None):
        """Sample the whole dataset at ``scale`` times the fit size (see :meth:`sample`).

        Returns:
            dict[str, pandas.DataFrame]
        """
        return self.sample(scale=scale, output_folder_path=output_folder_path)

