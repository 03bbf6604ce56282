"""The LLM as a copula: which columns depend on each other (paper, "Variable Dependency Inference").

:func:`infer_dependencies` sends the paper's ``p_copula`` prompt (appendix E.2) with the
column descriptions and a summary of the available statistics, under a schema whose items are
the table's column names, and validates the reply: unknown columns are dropped (and counted),
duplicate groups and groups contained in another are merged, groups of fewer than two columns
are dropped, and at most ``n_joints`` groups are kept.

With real rows, the synthesizer derives the spec's joints for these groups from the data
(``MacroSpec.from_data(data, metadata, joints=groups)``); with a spec alone the groups only
guide the LLM planners (their ``dependency_groups`` parameter).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sdv_llmsynthor.llm.prompts import ColumnPrompt, copula_messages, copula_schema
from sdv_llmsynthor.llm.structured import estimate_reply_tokens
from sdv_llmsynthor.planners.repair import call_llm

__all__ = ['infer_dependencies', 'statistics_summary', 'validate_groups']

_TOP_CELLS = 3


def statistics_summary(spec: Any, table: str, max_statistics: int = 20) -> list[dict[str, Any]]:
    """A short summary of a table's statistics for the copula prompt.

    Marginals give their most frequent cells with shares; joints give their columns.

    Args:
        spec (MacroSpec):
            The spec.
        table (str):
            The table.
        max_statistics (int):
            At most this many statistics.

    Returns:
        list[dict]
    """
    table_spec = spec.tables.get(table)
    if table_spec is None:
        return []
    out = []
    for statistic in table_spec.statistics[:max_statistics]:
        entry: dict[str, Any] = {'name': statistic.name, 'columns': list(statistic.columns)}
        if not statistic.is_joint:
            try:
                shares = statistic.proportions()
            except (TypeError, ValueError, ZeroDivisionError):
                shares = {}
            top = sorted(shares.items(), key=lambda kv: -kv[1])[:_TOP_CELLS]
            entry['most_frequent'] = [
                {'value': list(key[0]) if isinstance(key[0], tuple) else key[0],
                 'share': round(float(share), 3)}
                for key, share in top
            ]
        else:
            entry['cells'] = len(statistic.cells)
        out.append(entry)
    return out


def validate_groups(groups: Any, columns: list[str], n_joints: int, max_group_size: int = 3,
                    counts: Counter | None = None) -> list[list[str]]:
    """Clean the LLM's groups against the table's columns.

    Args:
        groups (object):
            The reply's ``groups`` (anything; non-lists are ignored).
        columns (list of str):
            The table's columns.
        n_joints (int):
            At most this many groups.
        max_group_size (int):
            Longer groups are cut to their first columns.
        counts (collections.Counter or None):
            Receives ``unknown_column``, ``short_group``, ``merged_group`` and ``long_group``
            counts.

    Returns:
        list[list[str]]:
            Groups of two or more known columns, none contained in another, in reply order.
    """
    counts = Counter() if counts is None else counts
    known = set(columns)
    cleaned: list[list[str]] = []
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, list):
            counts['short_group'] += 1
            continue
        members: list[str] = []
        for column in group:
            if not isinstance(column, str) or column not in known:
                counts['unknown_column'] += 1
            elif column not in members:
                members.append(column)
        if len(members) > max_group_size:
            counts['long_group'] += 1
            members = members[:max_group_size]
        if len(members) < 2:
            counts['short_group'] += 1
            continue
        cleaned.append(members)

    kept: list[list[str]] = []
    for index, group in enumerate(cleaned):
        as_set = set(group)
        contained = any(
            as_set <= set(other) and (as_set != set(other) or other_index < index)
            for other_index, other in enumerate(cleaned) if other_index != index
        )
        if contained:
            counts['merged_group'] += 1
            continue
        kept.append(group)
    if len(kept) > n_joints:
        counts['extra_group'] += len(kept) - n_joints
        kept = kept[:n_joints]
    return kept


def infer_dependencies(client: Any, spec: Any, metadata: Any, table: str, n_joints: int = 3,
                       usage: Any = None, max_group_size: int = 3,
                       temperature: float = 0.0, seed: int | None = 0) -> list[list[str]]:
    """Ask the LLM which columns of a table depend on each other (the paper's ``p_copula``).

    Args:
        client (LLMClient, str or None):
            The LLM client (or anything ``sdv_llmsynthor.llm.resolve_llm`` accepts).
        spec (MacroSpec):
            The spec (column descriptions, bins, statistics and context).
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.
        table (str):
            The table.
        n_joints (int):
            At most this many groups. Defaults to 3.
        usage (UsageLedger or None):
            Where the call, its tokens and discards are recorded.
        max_group_size (int):
            At most this many columns per group. Defaults to 3.
        temperature (float):
            Sampling temperature. Defaults to 0.
        seed (int or None):
            Sampling seed. Defaults to 0.

    Returns:
        list[list[str]]:
            Validated groups of two or more column names; empty when the table has fewer than
            two columns or the reply was unusable (the discard is recorded in ``usage``).
    """
    from sdv_llmsynthor.llm.resolve import resolve_llm
    from sdv_llmsynthor.spec.resolve import modelled_columns, resolve_columns

    if isinstance(n_joints, bool) or not isinstance(n_joints, int) or n_joints < 1:
        raise ValueError(
            f"The 'n_joints' parameter must be a positive integer. Got {n_joints!r} instead."
        )
    resolved = resolve_columns(spec, metadata, table)
    names = modelled_columns(resolved)
    if len(names) < 2:
        return []
    columns = [ColumnPrompt.from_resolved(resolved[name]) for name in names]
    table_spec = spec.tables.get(table)
    contexts = [spec.context or '']
    if table_spec is not None and table_spec.context:
        contexts.append(table_spec.context)
    context = '\n'.join(text for text in contexts if text)
    messages = copula_messages(columns, statistics_summary(spec, table), n_joints,
                               context=context, table=table)
    schema = copula_schema(names, n_joints, max_group_size)
    params = {'temperature': temperature, 'seed': seed,
              'max_tokens': estimate_reply_tokens(schema)}
    result = call_llm(resolve_llm(client), messages, schema, params, usage)
    if result.data is None:
        if usage is not None:
            usage.record_discard(result.failure or 'invalid_json')
        return []
    counts: Counter = Counter()
    groups = validate_groups(result.data.get('groups'), names, n_joints, max_group_size, counts)
    if usage is not None:
        for reason in ('unknown_column', 'short_group'):
            if counts[reason]:
                usage.record_discard(reason, counts[reason])
    return groups
