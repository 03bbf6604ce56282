"""The anchored LLM planner (default): the engine picks the cells, the LLM writes the records.

For each anchor (a cell with a record deficit, e.g. ``user_age in [35, 45) & gender = Female``)
the LLM returns ``k`` diverse, realistic completions of every other column, each with a
relative weight. The reply's JSON schema allows only valid categories and, for numeric and
datetime columns, only bin labels (short names such as ``"35-45"``, mapped back to the exact
edges), so a grammar-constrained or strict-schema backend cannot write an invalid record. The
anchored columns are left out of the reply (the prompt quotes them; the planner fills them in,
and a reply that writes one anyway must agree with the anchor), unless ``echo_fixed`` asks the
reply to repeat them as single-value enums. Several anchors share one call. The engine, not
the LLM, decides how many records each completion gets (``core.loop.allocate_counts``: by
weight, favouring completions that also fill other deficits).

Completions are kept in a library (planner state, saved in checkpoints): an anchor seen again,
or one whose fixed values are met by at least ``k`` stored completions (numeric ranges
narrowed to the anchor's interval), reuses them without a new call.

With ``statistical_share > 0`` the statistical planner's completions of the same anchor are
offered next to the LLM's with that share of the weight: the engine's allocation then favours
whichever also fill other deficits, so a weak or repetitive model cannot pile an anchor's
records into cells that are already full (the share of records the LLM wrote is reported by
the run's proposals library).

Households: a completion is a household (its columns, its size chosen first, then one record
per member); when the anchor is a person cell, that member is written first with the anchor's
values.

A call holds up to ``anchors_per_call`` anchors while its estimated reply stays within
``reply_tokens_per_call`` (the prompt is paid once per call, so fuller calls cost fewer tokens
per record). Each call asks for as many completion tokens as its reply needs (anchors x
completions x columns, estimated from the reply's schema, plus a margin). A reply cut off at
that limit keeps the completions it wrote whole (the partial ones are counted as
``truncated_record``); the anchors it did not reach are asked again once, in a smaller call of
their own.

A reply that cannot be used (not JSON, refused, off-schema and unrepairable, endpoint down)
never stops the loop: the discard is counted by reason and the statistical planner completes
the anchors of that call.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sdv_llmsynthor.llm.prompts import (
    AnchorPrompt,
    anchored_messages,
    anchored_schema,
    household_properties,
    meta_key,
    record_schema,
    weight_schema,
)
from sdv_llmsynthor.llm.structured import estimate_reply_tokens
from sdv_llmsynthor.planners.base import (
    PlannerState,
    Proposal,
    Range,
    value_from_json,
    value_to_json,
)
from sdv_llmsynthor.planners.llm_planner import LLMPlanner, valid_items
from sdv_llmsynthor.planners.repair import (
    HouseholdKeys,
    ProposalRepairer,
    RejectedProposal,
    TableView,
    build_table_view,
    describe_derived,
    repair_household,
    same_value,
)

__all__ = ['AnchoredLLMPlanner', 'estimate_reply_tokens']

_LIBRARY_PER_CELL = 4


def _plain_value(value: Any) -> Any:
    return value_to_json(value)


def _bounds(value: Any) -> tuple[float, float] | None:
    if isinstance(value, Range):
        try:
            return float(value.low), float(value.high)
        except (TypeError, ValueError):
            return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value), float(value)
    return None


def _narrow(value: Any, fixed: Any) -> tuple[bool, Any]:
    """Whether a stored value agrees with an anchor's fixed value, and the narrowed value."""
    if isinstance(fixed, Range):
        fixed_bounds = _bounds(fixed)
        bounds = _bounds(value)
        if fixed_bounds is None or bounds is None:
            return False, None
        low, high = max(bounds[0], fixed_bounds[0]), min(bounds[1], fixed_bounds[1])
        if bounds[0] == bounds[1]:
            return fixed_bounds[0] <= bounds[0] <= fixed_bounds[1], value
        if high <= low:
            return False, None
        return True, Range(low, high)
    return same_value(value, fixed), value


class _Pending:
    """An anchor waiting for its LLM call, with what is needed to read the reply."""

    def __init__(self, anchor: Any, prompt: AnchorPrompt, fixed: dict[str, Any],
                 extra_labels: dict[str, dict], is_person: bool, sizes: list[int] | None,
                 fixed_size: int | None, shown: dict[str, Any] | None = None):
        self.anchor = anchor
        self.shown = dict(shown or {})
        self.prompt = prompt
        self.fixed = fixed
        self.extra_labels = extra_labels
        self.is_person = is_person
        self.sizes = sizes
        self.fixed_size = fixed_size


class AnchoredLLMPlanner(LLMPlanner):
    """Complete each anchor cell with ``k`` realistic, weighted LLM completions.

    Args:
        client (LLMClient, str or None):
            The LLM client, or anything ``sdv_llmsynthor.llm.resolve_llm`` accepts
            (``'local'``, ``'openai:<model>'``...); resolved on first use. None picks the
            endpoint from the environment, else the embedded model.
        completions_per_anchor (int):
            Completions asked per anchor (``k``). Defaults to 4.
        anchors_per_call (int):
            At most this many anchors completed by one call. Defaults to 12 (more than the
            9 anchors per iteration of the planners benchmark: one call, not 8 + 1): the
            prompt (the spec's columns, context and rules) is paid once per call, so fuller
            calls cost fewer tokens per record; ``reply_tokens_per_call`` keeps large replies
            within the context.
        reply_tokens_per_call (int or None):
            A call takes anchors while the estimated completion tokens of its reply
            (:func:`estimate_reply_tokens` of the reply's schema) stay within this, so large
            completions (households) go in smaller calls that fit the model's context; a call
            always holds at least one anchor. Defaults to 2,400; None: ``anchors_per_call``
            only.
        temperature (float):
            Sampling temperature. Defaults to 0.7.
        max_tokens (int or None):
            Upper limit of the completion tokens of one call. Each call asks for what its
            reply needs (its anchors x completions x columns, estimated from the reply's
            schema, plus a margin), capped by this. Defaults to no cap.
        reuse_completions (bool):
            Reuse stored completions for anchors they satisfy instead of calling the LLM.
            Defaults to True.
        dependency_groups (list of list of str or None):
            Groups of dependent columns (e.g. from ``planners.copula.infer_dependencies``),
            shown to the LLM as guidance.
        max_reused_completions (int or None):
            At most this many stored completions of other cells offered per anchor, besides
            its own (the engine allocates the records, favouring those that fill other
            deficits). Defaults to ``4 * completions_per_anchor``.
        statistical_share (float):
            Share of each anchor's weight given to completions drawn by the statistical
            planner, offered next to the LLM's; the engine's allocation then favours whichever
            fill other deficits. Defaults to 0.1; 0 offers the LLM's completions only.
        echo_fixed (bool):
            Whether the reply repeats the anchor's fixed values in every completion (as
            single-value enums). Defaults to False: the reply gives only the other columns and
            the planner fills the fixed values in, which saves their tokens in every
            completion; a reply that writes a fixed column anyway is still checked against
            the anchor (``anchor_mismatch``).
    """

    name = 'anchored'

    def __init__(self, client: Any = None, completions_per_anchor: int = 4,
                 anchors_per_call: int = 12, temperature: float = 0.7,
                 max_tokens: int | None = None, reuse_completions: bool = True,
                 dependency_groups: list[list[str]] | None = None,
                 max_reused_completions: int | None = None, statistical_share: float = 0.1,
                 echo_fixed: bool = False, reply_tokens_per_call: int | None = 2400):
        self.client = client
        self.completions_per_anchor = completions_per_anchor
        self.anchors_per_call = anchors_per_call
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.reuse_completions = reuse_completions
        self.dependency_groups = dependency_groups
        self.max_reused_completions = max_reused_completions
        self.statistical_share = statistical_share
        self.echo_fixed = echo_fixed
        self.reply_tokens_per_call = reply_tokens_per_call
        self._init_llm_state()
        self._library: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ helpers
    def _check_parameters(self) -> None:
        for name in ('completions_per_anchor', 'anchors_per_call'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"The '{name}' parameter must be a positive integer. Got {value!r} instead."
                )
        budget = self.reply_tokens_per_call
        if budget is not None and (isinstance(budget, bool) or not isinstance(
                budget, (int, np.integer)) or budget < 1):
            raise ValueError(
                "The 'reply_tokens_per_call' parameter must be a positive integer or None. Got "
                f'{budget!r} instead.'
            )

    @staticmethod
    def _anchor_key(anchor: Any) -> str:
        fixed = {str(k): _plain_value(v) for k, v in sorted(anchor.fixed.items())}
        return json.dumps([anchor.table, fixed], sort_keys=True, default=str)

    def _prepare(self, anchor: Any, key: str, view: TableView,
                 keys: HouseholdKeys, weight_key: str) -> _Pending:
        is_person = view.is_households and anchor.table == view.child_table
        target = view.child_columns if is_person else view.columns
        shown: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        extra_labels: dict[str, dict] = {}
        constraints = []
        sizes = list(view.sizes) if view.is_households else None
        fixed_size = None
        for column_name, value in anchor.fixed.items():
            if view.is_households and not is_person and column_name == view.count_column:
                bounds = _bounds(value)
                if bounds is not None and bounds[0] != bounds[1]:
                    inside = [s for s in sizes if bounds[0] <= s < bounds[1]
                              or (s == bounds[1] and s == max(view.sizes))]
                    sizes = inside or sizes
                elif bounds is not None:
                    sizes = [int(round(bounds[0]))]
                if len(sizes) == 1:
                    fixed_size = sizes[0]
                continue
            if view.is_households and not is_person and column_name in view.derived:
                constraints.append(describe_derived(column_name, view.derived[column_name], value))
                continue
            column = target.get(column_name)
            if column is None:
                continue
            if isinstance(value, Range):
                low, high = _bounds(value) or (None, None)
                if low is None:
                    continue
                label = column.label_of(low, high)
                shown[column_name] = label
                extra_labels[column_name] = {label: (low, high)}
                fixed[column_name] = Range(low, high)
            else:
                shown[column_name] = _plain_value(value)
                fixed[column_name] = value

        completions = int(self.completions_per_anchor)
        weight = {weight_key: weight_schema()}
        echo = bool(self.echo_fixed)

        def asked(columns):
            # The columns the reply writes, and the fixed values it must repeat (if any).
            columns = list(columns.values())
            if echo:
                return columns, shown
            return [column for column in columns if column.name not in shown], None

        if not view.is_households:
            free = [c for c in view.columns.values() if c.name not in fixed]
            possibilities = 1
            for column in free:
                possibilities *= max(len(column.choices), 1)
                if possibilities >= completions:
                    break
            completions = max(1, min(completions, possibilities))
            schema = record_schema(*asked(view.columns), 'bins', weight)
            prompt_fixed, person_fixed = shown, None
        else:
            person_schema = record_schema(list(view.child_columns.values()), None, 'bins')
            if is_person:
                anchor_schema = record_schema(*asked(view.child_columns), 'bins')
                members = household_properties(
                    keys.size, sizes, keys.persons, person_schema, fixed_size,
                    anchor_person_schema=anchor_schema, anchor_person_key=keys.anchor_person,
                    other_persons_key=keys.other_persons)
                schema = record_schema(list(view.columns.values()), None, 'bins',
                                       {**members, **weight})
                prompt_fixed, person_fixed = {}, shown
            else:
                members = household_properties(keys.size, sizes, keys.persons, person_schema,
                                               fixed_size)
                schema = record_schema(*asked(view.columns), 'bins', {**members, **weight})
                prompt_fixed, person_fixed = dict(shown), None
                if fixed_size is not None:
                    prompt_fixed[keys.size] = fixed_size
        prompt = AnchorPrompt(key=key, fixed=prompt_fixed, records=int(anchor.records),
                              schema=schema, completions=completions, person_fixed=person_fixed,
                              constraints=constraints)
        return _Pending(anchor, prompt, fixed, extra_labels, is_person, sizes, fixed_size,
                        shown=None if echo else shown)

    # ------------------------------------------------------------------ reuse
    def _compatible(self, entry: dict[str, Any], pending: _Pending,
                    view: TableView) -> tuple[dict, list | None] | None:
        assignments = {k: value_from_json(v) for k, v in entry['assignments'].items()}
        children = entry.get('children')
        if children is not None:
            children = [{k: value_from_json(v) for k, v in c.items()} for c in children]
        anchor = pending.anchor
        if pending.is_person:
            if not children:
                return None
            for position, child in enumerate(children):
                narrowed = self._narrow_record(child, pending.fixed)
                if narrowed is not None:
                    children = list(children)
                    children[position] = narrowed
                    return assignments, children
            return None
        for column_name in anchor.fixed:
            if column_name in pending.fixed:
                continue
            if view.is_households and column_name == view.count_column:
                size = len(children or [])
                if pending.sizes and size not in pending.sizes:
                    return None
                continue
            # A derived column (not stored): only exact-key reuse may serve this anchor.
            return None
        narrowed = self._narrow_record(assignments, pending.fixed)
        if narrowed is None:
            return None
        return narrowed, children

    @staticmethod
    def _narrow_record(record: dict[str, Any], fixed: dict[str, Any]) -> dict | None:
        out = dict(record)
        for column_name, value in fixed.items():
            if column_name not in out:
                out[column_name] = value
                continue
            ok, narrowed = _narrow(out[column_name], value)
            if not ok:
                return None
            out[column_name] = narrowed
        return out

    def _library_options(self, pending: _Pending, key: str,
                         view: TableView) -> tuple[list, list]:
        """Stored completions that satisfy an anchor: its own, and others (narrowed)."""
        own: list[tuple[dict, list | None, float]] = []
        for entry in self._library.get(key, []):
            found = self._compatible(entry, pending, view)
            if found is not None:
                own.append((found[0], found[1], float(entry['weight'])))
        others = []
        for other_key, entries in self._library.items():
            if other_key == key:
                continue
            for entry in entries:
                found = self._compatible(entry, pending, view)
                if found is not None:
                    others.append((found[0], found[1], float(entry['weight'])))
        return own, others

    def _sample_others(self, others: list, room: int, state: PlannerState) -> list:
        if len(others) <= room:
            return others
        if room <= 0:
            return []
        weights = np.array([max(w, 1e-9) for _, _, w in others])
        picks = state.rng.choice(len(others), size=room, replace=False,
                                 p=weights / weights.sum())
        return [others[i] for i in sorted(picks)]

    def _proposals(self, anchor: Any, options: list, reason: str) -> list[Proposal]:
        return [
            Proposal(assignments=assignments, weight=weight, source=self.name,
                     anchor_id=anchor.anchor_id, children=children,
                     reason=f'{reason} for {anchor.text or "any record"}')
            for assignments, children, weight in options
        ]

    def _reuse(self, pending: _Pending, key: str, view: TableView,
               state: PlannerState) -> list[Proposal] | None:
        own, others = self._library_options(pending, key, view)
        # An anchor seen before reuses what the LLM wrote for it; a new one needs at least k
        # stored completions that satisfy it. Other compatible completions give the engine
        # more ways to fill the other deficits.
        if not own and len(others) < pending.prompt.completions:
            return None
        options = own + self._sample_others(others, self._cap(), state)
        self.stats['reused_anchors'] += 1
        self.stats['reused_completions'] += len(options)
        return self._proposals(pending.anchor, options, 'reused completion')

    def _cap(self) -> int:
        if self.max_reused_completions is not None:
            return int(self.max_reused_completions)
        return 4 * int(self.completions_per_anchor)

    def _store(self, key: str, completions: list[tuple[dict, list | None, float]]) -> None:
        total = sum(weight for _, _, weight in completions) or 1.0
        entries = self._library.setdefault(key, [])
        for assignments, children, weight in completions:
            entry = {
                'assignments': {k: value_to_json(v) for k, v in assignments.items()},
                'weight': float(weight) / total,
            }
            if children is not None:
                entry['children'] = [{k: value_to_json(v) for k, v in child.items()}
                                     for child in children]
            entries.append(entry)
        limit = _LIBRARY_PER_CELL * int(self.completions_per_anchor)
        if len(entries) > limit:
            del entries[:len(entries) - limit]

    # ------------------------------------------------------------------ calls
    @staticmethod
    def _with_fixed(item: dict[str, Any], pending: _Pending,
                    keys: HouseholdKeys) -> dict[str, Any]:
        """The completion with the anchor's fixed values the reply does not repeat filled in.

        The values are the ones the prompt showed (categories, bin labels), so they go through
        the same repair as the rest; a fixed column the reply wrote anyway is kept and checked
        against the anchor by the repairer (``anchor_mismatch``).
        """
        if not pending.shown:
            return item
        if not pending.is_person:
            return {**pending.shown, **item}
        member = item.get(keys.anchor_person)
        if not isinstance(member, dict):
            return item
        return {**item, keys.anchor_person: {**pending.shown, **member}}

    def _read_completions(self, pending: _Pending, items: Any, view: TableView,
                          repairer: ProposalRepairer, child_repairer: ProposalRepairer | None,
                          keys: HouseholdKeys, weight_key: str):
        if not isinstance(items, list):
            repairer.discard('missing_anchor')
            return []
        merged: dict[str, list] = {}
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise RejectedProposal('invalid_record')
                item = self._with_fixed(item, pending, keys)
                if weight_key in item:
                    weight = repairer.repair_weight(item[weight_key])
                else:
                    repairer.repaired('missing_weight')
                    weight = 1.0
                if view.is_households:
                    if pending.is_person:
                        assignments, children = repair_household(
                            view, item, repairer, child_repairer, keys,
                            person_fixed=pending.fixed,
                            person_extra_labels=pending.extra_labels,
                            fixed_size=pending.fixed_size)
                    else:
                        assignments, children = repair_household(
                            view, item, repairer, child_repairer, keys, fixed=pending.fixed,
                            extra_labels=pending.extra_labels, fixed_size=pending.fixed_size)
                        if pending.sizes and len(children) not in pending.sizes:
                            raise RejectedProposal('household_size_mismatch')
                else:
                    assignments = repairer.repair_record(
                        item, list(view.columns), fixed=pending.fixed,
                        extra_labels=pending.extra_labels, ignore=[weight_key])
                    children = None
            except RejectedProposal as rejected:
                repairer.discard(rejected.reason)
                continue
            identity = json.dumps([
                {k: value_to_json(v) for k, v in sorted(assignments.items())},
                None if children is None else [
                    {k: value_to_json(v) for k, v in sorted(c.items())} for c in children],
            ], sort_keys=True, default=str)
            if identity in merged:
                self.repairs['duplicate_completion'] += 1
                merged[identity][2] += weight
            else:
                merged[identity] = [assignments, children, weight]
        return [tuple(entry) for entry in merged.values()]

    def _complete(self, batch: list[_Pending], view: TableView, state: PlannerState,
                  repairer: ProposalRepairer, child_repairer: ProposalRepairer | None,
                  keys: HouseholdKeys, weight_key: str,
                  failed: list[Any], retry: bool = True) -> list[Proposal]:
        """Complete a batch of anchors with one call.

        A reply cut off at ``max_tokens`` keeps the complete completions it holds; the anchors
        it did not reach are asked again once, in a smaller call of their own (``retry``).
        """
        prompts = [pending.prompt for pending in batch]
        messages = anchored_messages(
            prompts, list(view.columns.values()), view.table, context=view.context,
            rules=view.rules, dependency_groups=self.dependency_groups, weight_key=weight_key,
            child_table=view.child_table, child_columns=list(view.child_columns.values()),
            persons_key=keys.persons, size_key=keys.size, anchor_person_key=keys.anchor_person,
            other_persons_key=keys.other_persons, echo_fixed=bool(self.echo_fixed),
        )
        result = self._ask(messages, anchored_schema(prompts), state, repairer)
        if result.data is None:
            failed.extend(pending.anchor for pending in batch)
            return []

        proposals = []
        unreached: list[_Pending] = []
        for pending in batch:
            anchor = pending.anchor
            items = result.data.get(pending.prompt.key)
            if result.truncated:
                items = valid_items(items, pending.prompt.schema, repairer)
                if not items:
                    unreached.append(pending)
                    continue
            completions = self._read_completions(
                pending, items, view, repairer, child_repairer, keys, weight_key)
            if not completions:
                failed.append(anchor)
                continue
            self.stats['llm_anchors'] += 1
            self.stats['completions'] += len(completions)
            total = sum(weight for _, _, weight in completions)
            completions = [(a, c, w / total) for a, c, w in completions]
            extra = []
            if self.reuse_completions:
                key = self._anchor_key(anchor)
                _, others = self._library_options(pending, key, view)
                extra = self._sample_others(others, self._cap(), state)
                self._store(key, completions)
            proposals.extend(self._proposals(anchor, completions, 'completion'))
            if extra:
                self.stats['reused_completions'] += len(extra)
                proposals.extend(self._proposals(anchor, extra, 'stored completion'))
        if unreached:
            if retry and len(unreached) < len(batch):
                self.stats['truncation_retries'] += 1
                for position, pending in enumerate(unreached):
                    pending.prompt.key = f'anchor_{position + 1}'
                proposals.extend(self._complete(unreached, view, state, repairer,
                                                child_repairer, keys, weight_key, failed,
                                                retry=False))
            else:
                failed.extend(pending.anchor for pending in unreached)
        return proposals

    # ------------------------------------------------------------------ Planner API
    def propose(self, anchors: list[Any], state: PlannerState) -> list[Proposal]:
        """Complete every anchor with weighted LLM completions (reused when possible).

        Args:
            anchors (list[Anchor]):
                The cells to fill.
            state (PlannerState):
                The run's state.

        Returns:
            list[Proposal]:
                Proposals with ``weight`` (the engine allocates the counts); anchors whose
                call failed get the statistical planner's proposals (with counts).
        """
        self._check_parameters()
        view = build_table_view(state)
        repairer, child_repairer = self._repairers(view, state)
        names = list(view.columns) + list(view.child_columns)
        weight_key = meta_key('weight', names)
        keys = HouseholdKeys.for_columns(names, meta=(weight_key,))

        proposals: list[Proposal] = []
        failed: list[Any] = []
        batch: list[_Pending] = []
        batch_tokens = 0
        budget = self.reply_tokens_per_call
        for anchor in anchors:
            if anchor.records <= 0:
                continue
            if view.is_households and anchor.table not in (view.table, view.child_table):
                failed.append(anchor)
                continue
            pending = self._prepare(anchor, f'anchor_{len(batch) + 1}', view, keys, weight_key)
            if self.reuse_completions:
                reused = self._reuse(pending, self._anchor_key(anchor), view, state)
                if reused:
                    proposals.extend(reused)
                    continue
            tokens = estimate_reply_tokens(anchored_schema([pending.prompt]))
            if batch and budget is not None and batch_tokens + tokens > int(budget):
                proposals.extend(self._complete(batch, view, state, repairer, child_repairer,
                                                keys, weight_key, failed))
                batch, batch_tokens = [], 0
            pending.prompt.key = f'anchor_{len(batch) + 1}'
            batch.append(pending)
            batch_tokens += tokens
            if len(batch) >= int(self.anchors_per_call):
                proposals.extend(self._complete(batch, view, state, repairer, child_repairer,
                                                keys, weight_key, failed))
                batch, batch_tokens = [], 0
        if batch:
            proposals.extend(self._complete(batch, view, state, repairer, child_repairer, keys,
                                            weight_key, failed))
        if failed:
            self.stats['fallback_anchors'] += len(failed)
            proposals.extend(self._fallback_planner().propose(failed, state))
        if self.statistical_share > 0:
            proposals = self._mix_statistical(proposals, anchors, failed, state)
        return proposals

    def _mix_statistical(self, proposals: list[Proposal], anchors: list[Any], failed: list[Any],
                         state: PlannerState) -> list[Proposal]:
        """Offer the statistical planner's completions next to the LLM's, weighted by share.

        Per anchor the LLM's completions keep ``1 - statistical_share`` of the weight and the
        statistical completions share the rest; the engine then allocates the records,
        favouring whichever also fill other deficits. A weak or repetitive model thus cannot
        pile an anchor's records into cells that are already full.
        """
        failed_ids = {anchor.anchor_id for anchor in failed}
        served = [anchor for anchor in anchors
                  if anchor.records > 0 and anchor.anchor_id not in failed_ids]
        if not served:
            return proposals
        share = min(max(float(self.statistical_share), 0.0), 1.0)
        served_ids = {anchor.anchor_id for anchor in served}
        totals: dict[int, float] = {}
        for proposal in proposals:
            if proposal.anchor_id in served_ids and proposal.weight is not None:
                totals[proposal.anchor_id] = totals.get(proposal.anchor_id, 0.0) + proposal.weight
        for proposal in proposals:
            if proposal.anchor_id in served_ids and proposal.weight is not None:
                proposal.weight = (1.0 - share) * proposal.weight / (
                    totals[proposal.anchor_id] or 1.0)
        records = {anchor.anchor_id: max(int(anchor.records), 1) for anchor in served}
        for proposal in self._fallback_planner().propose(served, state):
            count = int(proposal.count or 0)
            if count <= 0:
                continue
            proposal.weight = share * count / records[proposal.anchor_id]
            proposal.count = None
            proposals.append(proposal)
        return proposals

    def get_state(self) -> dict[str, Any]:
        """Return the completions library and the counters (JSON-serialisable, no client)."""
        return {
            'library': {key: [dict(entry) for entry in entries]
                        for key, entries in self._library.items()},
            'stats': dict(self.stats),
            'repairs': dict(self.repairs),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        state = state or {}
        self._library = {key: [dict(entry) for entry in entries]
                         for key, entries in state.get('library', {}).items()}
        self._set_counters(state)

    def summary(self) -> dict[str, Any]:
        """Counters of the run: calls, anchors completed by the LLM, reused, fallen back, repairs.

        Returns:
            dict
        """
        return {
            'calls': int(self.stats['calls']),
            'llm_anchors': int(self.stats['llm_anchors']),
            'reused_anchors': int(self.stats['reused_anchors']),
            'fallback_anchors': int(self.stats['fallback_anchors']),
            'completions': int(self.stats['completions']),
            'reused_completions': int(self.stats['reused_completions']),
            'library_cells': len(self._library),
            'repairs': dict(sorted(self.repairs.items())),
        }
