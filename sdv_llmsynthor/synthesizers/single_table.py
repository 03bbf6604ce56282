"""``LLMSynthorSynthesizer``: LLMSynthor behind SDV's single-table synthesizer API."""

from __future__ import annotations

import warnings

import pandas as pd
from sdv.cag._errors import ConstraintNotMetError
from sdv.cag._utils import _validate_constraints_single_table
from sdv.cag.programmable_constraint import ProgrammableConstraint, ProgrammableConstraintHarness
from sdv.errors import SynthesizerInputError
from sdv.single_table.base import BaseSingleTableSynthesizer
from sdv.single_table.utils import validate_folder_path_with_table_names

from sdv_llmsynthor.synthesizers._common import format_table, is_whole_number, learn_bounds
from sdv_llmsynthor.synthesizers._mixin import LLMSynthorMixin

__all__ = ['LLMSynthorSynthesizer']


class LLMSynthorSynthesizer(LLMSynthorMixin, BaseSingleTableSynthesizer):
    """Macro-aligned records for one table: an LLM writes records, the engine matches aggregates.

    The synthesizer follows SDV's single-table API (SDV 2.x: ``fit`` takes and ``sample``
    returns a dict ``{table_name: DataFrame}``; a bare DataFrame is accepted too).

    *Fit learns, sample draws.* ``fit`` runs LLMSynthor's discrepancy-guided loop against the
    spec's target statistics and keeps a library of the proposals that produced valid records
    (each a localised joint distribution over all columns). ``sample(num_rows)`` draws records
    from that library and calibrates them to the targets rescaled to ``num_rows``, offline; only
    when a request larger than the fit size needs cells the library lacks does it call the
    planner again (and warn with :class:`~sdv_llmsynthor.errors.LibraryTopUpWarning`).

    Args:
        metadata (sdv.metadata.Metadata):
            The metadata of the one table to synthesise.
        spec (MacroSpec, dict, str or None):
            The target statistics: a :class:`~sdv_llmsynthor.spec.MacroSpec`, its dict, or the
            path of a spec JSON file. When None, ``fit(data)`` derives it from real rows.
        llm (LLMClient, str, dict or None):
            The LLM for the LLM planners: a client object, ``'local'`` (the embedded model),
            ``'openai:<model>'``, a dict of ``OpenAICompatibleClient`` arguments, or None (an
            endpoint configured in the environment, else the embedded model). A client object is
            never saved with the synthesizer; its description is saved instead.
        planner (str or Planner):
            ``'anchored'`` (default: the engine picks deficit cells, the LLM completes the
            records), ``'free'`` (the paper's free proposal sampling), ``'statistical'`` (no
            LLM), or a ``Planner`` instance.
        num_rows (int or None):
            Rows generated during ``fit`` to build the library. Defaults to the spec's
            ``num_rows`` (``fit()``) or to the number of real rows, at most 5,000
            (``fit(data)``).
        pool_factor (float):
            The pool holds this many times the requested rows before calibration. Defaults to
            1.2.
        max_iterations (int):
            Iteration budget of the fit loop. Defaults to 30.
        token_budget (int or None):
            LLM tokens (prompt plus completion) one run (``fit``, or a ``sample`` top-up) may
            spend; once spent, the statistical planner completes the remaining cells without
            LLM calls, so the requested rows are still produced.
        checkpoint_dir (str or None):
            Folder where the fit loop checkpoints; a fit finding its own checkpoint there
            resumes from it.
        cache_dir (str or None):
            Folder of the LLM response cache (a rerun with the same seed is then free).
        seed (int):
            Seed of every random draw (stored as given, used in ``fit`` and ``sample``).
            Defaults to 0.
        enforce_min_max_values (bool):
            Clip numerical columns to the metadata's range (or the real rows' range).
            Defaults to True.
        enforce_rounding (bool):
            Round numerical columns to the metadata's (or the real rows') decimals. Defaults to
            True.
        locales (list or str):
            Faker locales for PII columns. Defaults to ``['en_US']``.
        verbose (bool):
            Show a progress bar while fitting. Defaults to True.
    """

    _model = None

    # ``__init__`` is LLMSynthorMixin's: the signature above, every argument under its name.
    def _init_sdv_base(self, metadata, enforce_min_max_values, enforce_rounding, locales):
        BaseSingleTableSynthesizer.__init__(
            self, metadata, enforce_min_max_values=enforce_min_max_values,
            enforce_rounding=enforce_rounding, locales=locales)

    # ------------------------------------------------------------------ helpers
    def _constraints_by_table(self):
        return {self._table_name: list(self._reject_sampling_constraints)}

    def _as_data(self, data):
        if isinstance(data, pd.DataFrame):
            return {self._table_name: data}
        if isinstance(data, dict):
            if len(data) != 1:
                raise SynthesizerInputError(
                    'The `data` parameter must be a dictionary containing exactly one table name '
                    'mapped to a pandas DataFrame.'
                )
            name = next(iter(data))
            self._validate_table_name(name)
            return data
        raise SynthesizerInputError(
            'The `data` parameter must be a dictionary {table_name: DataFrame} (or a '
            f'DataFrame). Got {type(data).__name__} instead.'
        )

    # ------------------------------------------------------------------ constraints
    def add_constraints(self, constraints):
        """Add SDV constraints (``sdv.cag``); they are enforced by rejecting invalid records.

        Unlike SDV's own synthesizers, the metadata is not transformed: every generated batch
        is checked with each constraint's ``is_valid`` and failing records are rejected and
        counted in the run's rejection table (rule ``'constraint <repr>'``). Constraints that
        learn from data (``FixedCombinations``) need ``fit(data)``.

        Args:
            constraints (list):
                SDV constraint objects.
        """
        constraints = _validate_constraints_single_table(constraints, self._fitted)
        for constraint in constraints:
            if isinstance(constraint, ProgrammableConstraint):
                constraint = ProgrammableConstraintHarness(constraint)
            try:
                constraint.get_updated_metadata(self._original_metadata)
            except ConstraintNotMetError as error:
                raise SynthesizerInputError(str(error)) from error
            self._reject_sampling_constraints.append(constraint)
        self._constraints_fitted = False

    # ------------------------------------------------------------------ fit
    def fit(self, data=None):
        """Run the synthesis loop against the spec and keep its library of proposals.

        Args:
            data (dict[str, pandas.DataFrame], pandas.DataFrame or None):
                Real rows, as SDV 2.x expects them (``{table_name: DataFrame}``; a bare
                DataFrame is accepted). When given without a spec, the spec is derived from
                them (bins, marginals, and joints chosen by the LLM acting as a copula when an
                LLM planner is used, else by mutual information). The rows are validated
                against the metadata, used to derive the spec and fit data-dependent
                constraints, then dropped: the fitted synthesizer keeps no reference to them.
                When None, the spec given at creation is used.
        """
        self._check_input_metadata_updated()
        self._fit_llmsynthor(data)

    def _prepare_fit_data(self, data):
        data = self._as_data(data)
        self.validate(data)
        table_data = data[self._table_name]
        self._bounds = learn_bounds(table_data, self._table_metadata())
        return data, len(table_data)

    def _on_fit_without_data(self):
        for constraint in self._reject_sampling_constraints:
            if type(constraint).__name__ == 'FixedCombinations' and not constraint._fitted:
                warnings.warn(
                    'FixedCombinations learns its combinations from real rows; with fit() on a '
                    'spec alone it cannot be enforced. Call fit(data) to enforce it.',
                    stacklevel=4,
                )

    # ------------------------------------------------------------------ sample
    def sample(self, num_rows, main_table_name=None, max_tries_per_batch=100, batch_size=None,
               output_folder_path=None):
        """Draw ``num_rows`` records from the library, calibrated to the targets.

        No LLM call is made unless ``num_rows`` exceeds the fit size and the targets rescaled
        to it need cells no library proposal can produce; those cells (only) go to the planner
        and a ``LibraryTopUpWarning`` says how many cells and calls.

        SDV samples in batches through its data processor; that would calibrate each batch on
        its own and break dataset-level alignment (the targets hold for the whole sample, not
        for each batch). This method therefore draws and calibrates all ``num_rows`` at once;
        ``batch_size`` and ``max_tries_per_batch`` are accepted for compatibility and ignored.

        Args:
            num_rows (int):
                Rows to sample.
            main_table_name (str or None):
                The table's name (optional, as in SDV).
            max_tries_per_batch (int):
                Ignored (see above).
            batch_size (int or None):
                Ignored (see above).
            output_folder_path (str or None):
                Folder where ``<table_name>.csv`` is written as well.

        Returns:
            dict[str, pandas.DataFrame]:
                ``{table_name: DataFrame}`` (SDV 2.x), with the metadata's columns, dtypes,
                rounding, ranges and categories, and sequential ids in the primary key.
        """
        table_name = self._table_name if main_table_name is None else main_table_name
        self._validate_table_name(table_name)
        self._validate_fit_before_sample()
        self._check_input_metadata_updated()
        if num_rows is None:
            raise ValueError('You must specify the number of rows to sample (e.g. num_rows=100).')
        if not is_whole_number(num_rows) or num_rows < 0:
            raise SynthesizerInputError(
                f"Invalid value '{num_rows}' for parameter 'num_rows'. Please provide a "
                'non-negative integer.'
            )
        num_rows = int(num_rows)
        output_paths = validate_folder_path_with_table_names(output_folder_path, [table_name])
        table_metadata = self._table_metadata()
        if num_rows == 0:
            sampled = {table_name: format_table(
                pd.DataFrame(columns=list(table_metadata['columns'])), table_metadata)}
        else:
            result = self._draw_from_library(num_rows)
            sampled = self._format_sample(
                {table_name: result.data},
                keys={table_name: {table_metadata.get('primary_key')} - {None}},
                bounds={table_name: self._bounds},
            )
        self._write_sample(sampled, output_paths)
        return sampled

    def sample_from_conditions(self, conditions, max_tries_per_batch=100, batch_size=None,
                               output_folder_path=None):
        """Not supported: conditions would break the alignment with the spec's targets.

        Raises:
            SynthesizerInputError: always. Add the condition to the spec as a statistic instead.
        """
        raise SynthesizerInputError(
            'LLMSynthorSynthesizer does not sample from conditions: express them as statistics '
            'of the spec (e.g. a marginal with the wanted shares) and fit again.'
        )

    def sample_remaining_columns(self, known_columns, max_tries_per_batch=100, batch_size=None,
                                 output_folder_path=None):
        """Not supported (see :meth:`sample_from_conditions`).

        Raises:
            SynthesizerInputError: always.
        """
        self.sample_from_conditions(known_columns)
