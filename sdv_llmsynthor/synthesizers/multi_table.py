"""``LLMSynthorMultiTableSynthesizer``: related tables (households and persons, or any tree of
parent/child tables) behind SDV's multi-table API."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
from sdv.cag._utils import _validate_constraints
from sdv.cag.programmable_constraint import ProgrammableConstraint, ProgrammableConstraintHarness
from sdv.errors import SamplingError, SynthesizerInputError
from sdv.metadata import Metadata
from sdv.multi_table.base import BaseMultiTableSynthesizer
from sdv.single_table.utils import validate_folder_path_with_table_names

from sdv_llmsynthor.core.tree import attach_children, match_units
from sdv_llmsynthor.errors import SynthesisWarning
from sdv_llmsynthor.spec.resolve import bin_index
from sdv_llmsynthor.spec.tree import (
    edge_metadata,
    edge_spec,
    relationship_edges,
    untargeted_statistics,
)
from sdv_llmsynthor.synthesizers._common import (
    is_whole_number,
    learn_bounds,
    library_from_result,
    merge_usage,
    run_report_from_result,
)
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

    Any metadata whose relationships form a tree is handled (several children per parent,
    grandchildren: ``region > household > person > trip``; ``users > sessions >
    transactions`` with ``users > reviews``). The tree is synthesised top-down, one
    parent/child edge at a time (:mod:`sdv_llmsynthor.spec.tree`): the root with its first
    child as above; then, for every other edge, the edge's parent table with its children is
    synthesised the same way (aligned with the child counts, the child's statistics and the
    cross-table statistics of that edge) and each parent synthesised one level up receives the
    children of a unit whose parent columns match its own (:mod:`sdv_llmsynthor.core.tree`),
    so child counts follow the parent's cells. Keys are consistent at every level.

    It subclasses SDV's ``BaseMultiTableSynthesizer`` (metadata validation, ``get_metadata``,
    ``get_parameters``, ``save``, ``validate``) and replaces fitting and sampling.

    Args:
        metadata (sdv.metadata.Metadata):
            Tables whose relationships form one tree (at least one parent and one child).
        spec (MacroSpec, dict, str or None):
            The targets (see ``specs/README.md``); when None, ``fit(data)`` derives them.
        llm (LLMClient, str, dict or None):
            The LLM (see :class:`~sdv_llmsynthor.synthesizers.LLMSynthorSynthesizer`).
        planner (str or Planner):
            ``'anchored'`` (default), ``'free'``, ``'statistical'`` or a ``Planner``.
        num_rows (int or None):
            Households (rows of the root table) generated during ``fit`` (the size
            ``scale=1.0`` refers to). Defaults to the spec's root ``num_rows``, or the number
            of real root rows (at most 5,000).
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
        self._edge_states = []

    # ------------------------------------------------------------------ helpers
    def _tree(self):
        """The root table and the parent/child edges, top-down."""
        try:
            return relationship_edges(self._original_metadata)
        except ValueError as error:
            raise SynthesizerInputError(
                'LLMSynthorMultiTableSynthesizer handles tables whose relationships form a '
                'tree, with at least one parent table with one child table (households and '
                f'persons); {error}'
            ) from error

    def _relationship(self):
        """The metadata relationship of the root table and its first child."""
        edge = self._tree()[1][0]
        return {'parent_table_name': edge.parent, 'child_table_name': edge.child,
                'parent_primary_key': edge.parent_primary_key,
                'child_foreign_key': edge.child_foreign_key}

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
        self._tree()
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
        return data, len(data[self._tree()[0]])

    def _on_fit_loop_done(self, loop):
        self._mean_children = float(getattr(loop, 'mean_children', 1.0))

    # ------------------------------------------------------------------ the tree
    def _edge_seed(self, index):
        if index == 0:
            return int(self.seed)
        return int(np.random.SeedSequence([int(self.seed), 2, index]).generate_state(1)[0])

    def _run_fit_loop(self, spec, num_rows):
        """Fit every edge top-down; returns the root edge's loop and result.

        The root edge (the root table and its first child) runs as the two-table case always
        did; every other edge runs on its own spec, at the number of parents synthesised one
        level up, and hands its children down to them.
        """
        root, edges = self._tree()
        skipped = untargeted_statistics(spec)
        if skipped:
            warnings.warn(
                'These statistics span derived columns of two different child tables, which '
                f'are synthesised edge by edge, and are not targeted: {skipped}.',
                SynthesisWarning, stacklevel=4,
            )
        self._edge_states = []
        frames = {}
        root_run = None
        for index, edge in enumerate(edges):
            if len(edges) == 1:
                # The two-table case: the spec and metadata as given.
                state = {'edge': edge, 'spec': spec, 'metadata': None}
            else:
                state = {'edge': edge, 'spec': edge_spec(spec, edge),
                         'metadata': Metadata.load_from_dict(edge_metadata(
                             self._original_metadata, edge))}
            checkpoint_dir = self.checkpoint_dir
            if index and checkpoint_dir is not None:
                checkpoint_dir = os.path.join(os.fspath(checkpoint_dir),
                                              f'edge{index}_{edge.parent}_{edge.child}')
            units = num_rows if index == 0 else len(frames[edge.parent])
            if index and not units:
                frames[edge.child] = self._empty_child(edge)
                state.update(library=[], fit_units=0, mean_children=0.0, report=None,
                             usage=None, match_columns=[])
                self._edge_states.append(state)
                continue
            loop, result = super()._run_fit_loop(
                state['spec'], units, seed=self._edge_seed(index), metadata=state['metadata'],
                checkpoint_dir=checkpoint_dir)
            state.update(
                library=library_from_result(result), fit_units=int(loop.requested),
                mean_children=float(getattr(loop, 'mean_children', 1.0)),
                report=run_report_from_result(result, 'fit'), usage=result.usage,
                match_columns=self._match_columns(loop, edge),
            )
            state['report']['library_size'] = len(state['library'])
            self._edge_states.append(state)
            if index == 0:
                root_run = (loop, result)
                frames[edge.parent] = result.data[edge.parent]
                frames[edge.child] = result.data[edge.child]
            else:
                frames[edge.child], share = self._hand_down(
                    state, frames[edge.parent], result,
                    np.random.default_rng(self._edge_seed(index)))
                state['report']['exact_match_share'] = share
        return root_run

    @staticmethod
    def _match_columns(loop, edge):
        """The parent's own columns to match units on, most telling first.

        First the columns that share a statistic with a column derived from this child (the
        child count, cross-table columns): the children depend on them; then the columns of
        other joint statistics; then the rest.
        """
        resolved = loop.resolved[edge.parent]
        encoders = loop.encodings[edge.parent].encoders
        own = [name for name, column in resolved.items()
               if column.derived is None and name in encoders and encoders[name].is_encoded]
        derived = {name for name, column in resolved.items() if column.derived is not None}
        rank = dict.fromkeys(own, 2)
        for statistic in loop.encodings[edge.parent].statistics:
            columns = set(statistic.columns)
            level = 0 if columns & derived else (1 if len(columns) > 1 else 2)
            for name in columns & set(own):
                rank[name] = min(rank[name], level)
        ordered = sorted(own, key=lambda name: (rank[name], own.index(name)))
        return [(name, resolved[name], encoders[name]) for name in ordered]

    @staticmethod
    def _match_codes(frame, match_columns):
        codes = []
        for name, resolved, encoder in match_columns:
            if name not in frame.columns:
                codes.append(np.full(len(frame), -1, dtype=np.int64))
            elif resolved.main_edges is not None:
                codes.append(bin_index(encoder.to_float(frame[name]),
                                       np.asarray(resolved.main_edges, dtype=float)))
            else:
                codes.append(encoder.encode(frame[name]).astype(np.int64))
        if not codes:
            return np.zeros((len(frame), 0), dtype=np.int64)
        return np.column_stack(codes)

    def _hand_down(self, state, parents, result, rng):
        """The children of ``result`` moved to the existing ``parents`` (see ``core.tree``).

        Returns:
            tuple[pandas.DataFrame, float]:
                The child rows, and the share of parents matched on every column.
        """
        edge = state['edge']
        units = result.data[edge.parent]
        children = result.data[edge.child]
        assigned, agreed = match_units(self._match_codes(parents, state['match_columns']),
                                       self._match_codes(units, state['match_columns']), rng)
        unit_of_child = pd.Series(np.arange(len(units)),
                                  index=units[edge.parent_primary_key].to_numpy())
        child_units = unit_of_child.reindex(children[edge.child_foreign_key].to_numpy())
        moved, keys = attach_children(children, child_units.to_numpy(dtype=np.int64), assigned,
                                      parents[edge.parent_primary_key].to_numpy())
        moved[edge.child_foreign_key] = keys
        child_key = self._table_metadata(edge.child).get('primary_key')
        if child_key is not None and child_key != edge.child_foreign_key:
            moved[child_key] = np.arange(len(moved), dtype=np.int64)
        matched = len(state['match_columns'])
        share = float(np.mean(agreed == matched)) if len(agreed) else 1.0
        return moved, share

    def _empty_child(self, edge):
        columns = list(self._table_metadata(edge.child).get('columns', {}))
        return pd.DataFrame({column: pd.Series([], dtype=object) for column in columns})

    def _finish_fit(self, spec, loop, result, extra_usage=None):
        super()._finish_fit(spec, loop, result, extra_usage)
        if len(self._edge_states) <= 1:
            return
        for state in self._edge_states[1:]:
            self._usage = merge_usage(self._usage, state['usage'])
        self._fit_report = self._tree_report(self._fit_report, self._edge_states)

    @staticmethod
    def _tree_report(root_report, states):
        """The root edge's report, with every edge's tables added (an ``edge`` column)."""
        report = dict(root_report)
        reports = [state['report'] for state in states if state.get('report') is not None]
        for key in ('rejections', 'unmet', 'statistics'):
            frames = []
            for state in states:
                part = (state.get('report') or {}).get(key)
                if part is None or len(part) == 0:
                    continue
                part = part.copy()
                part.insert(0, 'edge', f"{state['edge'].parent}>{state['edge'].child}")
                frames.append(part)
            report[key] = pd.concat(frames, ignore_index=True) if frames else root_report[key]
        report['edges'] = [
            dict(item, parent=state['edge'].parent, child=state['edge'].child)
            for state, item in zip(states, [state.get('report') or {} for state in states])
        ]
        report['usage'] = merge_usage(None, None)
        for item in reports:
            report['usage'] = merge_usage(report['usage'], item.get('usage'))
        return report

    def _sample_tree(self, households):
        """Draw every edge from its library, top-down; returns the tables (loop output)."""
        states = self._edge_states
        if len(states) <= 1:
            state = states[0] if states else None
            result = self._draw_from_library(households)
            if state is not None:
                state['sample_report'] = self._sample_report
            return dict(result.data)
        frames = {}
        reports = []
        drawn = []
        for index, state in enumerate(states):
            edge = state['edge']
            units = households if index == 0 else len(frames[edge.parent])
            if not units or not state['library']:
                frames[edge.child] = self._empty_child(edge)
                continue
            result = self._draw_from_library(
                units, spec=state['spec'], library=state['library'],
                fit_units=state['fit_units'], metadata=state['metadata'])
            reports.append(dict(self._sample_report))
            drawn.append(state)
            if index == 0:
                frames[edge.parent] = result.data[edge.parent]
                frames[edge.child] = result.data[edge.child]
            else:
                rng = np.random.default_rng([self._edge_seed(index), self._sample_calls])
                frames[edge.child], share = self._hand_down(state, frames[edge.parent], result,
                                                            rng)
                reports[-1]['exact_match_share'] = share
        sample_states = [dict(state, report=report) for state, report in zip(drawn, reports)]
        report = self._tree_report(reports[0], sample_states)
        report['lacking_cells'] = sum(item['lacking_cells'] for item in reports)
        report['top_up_llm_calls'] = sum(item['top_up_llm_calls'] for item in reports)
        self._sample_report = report
        return frames

    def _mean_rows_per_root(self, table):
        """Mean rows of ``table`` per root row (the product of child counts down the path)."""
        means = {self._tree()[0]: 1.0}
        states = self._edge_states or []
        if len(states) <= 1:
            edge = self._tree()[1][0]
            means[edge.child] = float(self._mean_children or 1.0)
            return means.get(table)
        for state in states:
            edge = state['edge']
            means[edge.child] = means[edge.parent] * float(state['mean_children'] or 0.0)
        return means.get(table)

    # ------------------------------------------------------------------ sample
    def _households_for(self, num_rows, main_table_name, scale):
        root = self._tree()[0]
        if num_rows is not None:
            if not is_whole_number(num_rows) or num_rows < 1:
                hint = ''
                if (isinstance(num_rows, float) and not isinstance(num_rows, bool)
                        and 0 < num_rows < 1):
                    # SDV 1.x took ``scale`` first; SDV 2.x takes ``num_rows`` first.
                    hint = (f' To sample relative to the fit size, pass it by name: '
                            f'sample(scale={num_rows}).')
                raise SynthesizerInputError(
                    f"Invalid parameter for 'num_rows' ({num_rows}). Please provide an integer "
                    f'that is greater than 0.{hint}'
                )
            table = main_table_name or root
            if table == root:
                return int(num_rows)
            if table not in self._original_metadata.tables:
                raise SynthesizerInputError(f"Table '{table}' does not exist in the metadata.")
            per_root = self._mean_rows_per_root(table) or 1.0
            return max(1, int(math.ceil(num_rows / max(per_root, 1e-9))))
        scale = 1.0 if scale is None else scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise SynthesizerInputError(
                f"Invalid parameter for 'scale' ({scale}). Please provide a number that is >0.0."
            )
        return max(1, int(round(scale * self._fit_units)))

    def sample(self, num_rows=None, main_table_name=None, batch_size=None,
               max_tries_per_batch=100, output_folder_path=None, *, scale=None):
        """Sample households with all their persons, calibrated to every target at once.

        The positional arguments are SDV 2.x's (``num_rows``, ``main_table_name``,
        ``batch_size``, ``max_tries_per_batch``, ``output_folder_path``); ``scale`` (SDV 1.x's
        first argument) is taken by name only. Give either ``scale`` (households relative to
        the fit size; the default is 1.0) or ``num_rows`` of ``main_table_name`` (the root
        table by default; a row count of another table is converted to root rows with the
        mean child counts down the tree).
        A tree of tables is sampled top-down, edge by edge, each from its own library.
        Sampling is done for the whole dataset at once (dataset-level alignment), so
        ``batch_size`` and ``max_tries_per_batch`` are ignored.

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
        frames = self._sample_tree(households)
        keys = {}
        for edge in self._tree()[1]:
            keys.setdefault(edge.parent, set()).add(edge.parent_primary_key)
            keys.setdefault(edge.child, set()).add(edge.child_foreign_key)
        for table in tables:
            primary_key = self._table_metadata(table).get('primary_key')
            keys[table] = set(keys.get(table, set())) | ({primary_key} - {None})
        sampled = self._format_sample({table: frames[table] for table in tables}, keys,
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

