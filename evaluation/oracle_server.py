"""An oracle OpenAI-compatible chat endpoint that answers the project's prompts with real records.

It is an evaluation device, not a model: it reads the JSON schema of each request (the
``response_format``, or the schema the client writes in the system prompt in plain-text mode)
and the anchors quoted in the prompt, and answers with records drawn from a pool of *real*
records held out from the spec, conditional on the anchor's fixed values. What it buys is an
upper bound of what a capable model could add; with ``corruption > 0`` a share of the fields
it writes are replaced by random valid values (a bad model that still follows the schema).

Prompts answered (``sdv_llmsynthor.llm.prompts``):

- **anchored** (``{"anchor_1": [...], ...}``): per anchor, ``k`` completions sampled from the
  pool records that match the anchor's fixed values (quoted in the prompt's anchor lines, or
  single-value enums in the schema when the planner asks the reply to repeat them; numeric
  columns as bin labels, ``'18-23'`` or ``'[18, 23)'``; for households, the derived-column
  conditions quoted as data and the allowed sizes); households
  whose anchor is a person cell put the matching member under ``anchor_person``. When no pool
  record matches every condition, the records matching the most conditions are used (counted
  as ``relaxed_anchors``).
- **free** (``{"n_proposals": n, "proposals": [...]}``): each proposal is a pool record matching
  one of the under-represented cells of the guidance (chosen with probability proportional to
  its deficit), with numeric columns as the main bin holding the value and ``num`` its share
  of the requested samples.
- **copula** (``{"groups": [...]}``): the column pairs of the pool with the highest mutual
  information.

The server speaks the OpenAI chat-completions wire format (``POST /v1/chat/completions``,
``GET /v1/models``), so the package's real client path runs against it: the ``openai``
package, the structured-output fallback and the retries. ``reject_json_schema=True`` answers
``response_format={"type": "json_schema"}`` with HTTP 500 and llama.cpp's message, so the
client falls back to ``json_object``; ``fail_every=n`` answers every ``n``-th request with HTTP
503, which the client retries. Every request is counted (:attr:`OracleServer.counts`).

Token counts in ``usage`` are estimates (4 characters per token): the oracle has no tokenizer.
"""

from __future__ import annotations

import ast
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd

__all__ = ['OracleData', 'OracleServer', 'CORRUPTION_LEVELS']

#: The corruption levels of the benchmark (share of the fields replaced by random valid values).
CORRUPTION_LEVELS = (0.0, 0.1, 0.3, 0.6, 1.0)

_LABEL = re.compile(r'^\[\s*([^,\[\]]+?)\s*,\s*([^,\[\]]+?)\s*([)\]])$')
_NUM = r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'
_SHORT_LABEL = re.compile(rf'^({_NUM})\s*(?:-|to)\s*({_NUM})$')
_DATA_BLOCK = re.compile(r'<<<(.*?)>>>', re.DOTALL)
_ANCHOR_LINE = re.compile(r'^- (anchor_\d+): <<<(.*?)>>>(.*)$', re.MULTILINE)
_SATISFY = re.compile(r'satisfy <<<(.*?)>>>')
_CONSTRAINT = re.compile(r'^(\S+) = (.*?) \(')
_GUIDANCE = re.compile(r'\*\*(Joint|Marginal) Guidance:\*\*[^<]*<<<(.*?)>>>', re.DOTALL)
_GUIDANCE_LINE = re.compile(r'^(.*): ([+-]?[\d.]+) records')
_TOTAL = re.compile(r'totaling (\d+) samples')
_SCHEMA_IN_TEXT = 'It must be valid against this JSON Schema:\n'
_LLAMA_CPP_REJECTION = (
    "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should "
    "be 'text' or 'json_object' [type=literal_error, input_value='json_schema', "
    "input_type=str]"
)


# --------------------------------------------------------------------------- values
def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text)
    try:
        return float(str(text).replace(',', ''))
    except ValueError:
        return None


def _parse_label(label: Any, short: bool = False) -> tuple[float, float, bool] | None:
    """``'[35, 45)'`` -> ``(35.0, 45.0, False)``; ``None`` when ``label`` is no interval.

    With ``short`` (a numeric column), ``'35-45'`` and ``'-5 to 0'`` (the prompts' short
    labels, rounded edges) read as ``[35, 45)`` and ``[-5, 0)`` too.
    """
    if not isinstance(label, str):
        return None
    match = _LABEL.match(label.strip())
    if match is None and short:
        found = _SHORT_LABEL.match(label.strip())
        if found is not None:
            low, high = _number(found.group(1)), _number(found.group(2))
            return None if low is None or high is None or high <= low else (low, high, False)
    if match is None:
        return None
    low, high = _number(match.group(1)), _number(match.group(2))
    if low is None or high is None:
        return None
    return low, high, match.group(3) == ']'


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _same(value: Any, option: Any) -> bool:
    """Whether a pool value equals an enum option (numbers compared as numbers)."""
    if _missing(value) or option is None:
        return _missing(value) and option is None
    if isinstance(option, bool) or isinstance(value, (bool, np.bool_)):
        return str(bool(value) if isinstance(value, (bool, np.bool_)) else value) == str(option)
    left, right = _number(value), _number(option)
    if left is not None and right is not None and not isinstance(option, str):
        return math.isclose(left, right, abs_tol=1e-9)
    if left is not None and right is not None and isinstance(value, (int, float, np.number)):
        return math.isclose(left, right, abs_tol=1e-9)
    return str(value) == str(option)


class EnumMapper:
    """Maps a pool value to one option of an enum: a category, a number or a bin label.

    Args:
        options (list):
            The enum of a property schema.
        numeric (bool):
            Whether the column is numeric (its short labels, ``'18-23'``, are intervals).
    """

    def __init__(self, options: Sequence[Any], numeric: bool = False):
        self.options = list(options)
        self.intervals = [_parse_label(option, numeric) for option in self.options]

    def choice(self, value: Any) -> tuple[bool, Any]:
        """``(True, option)`` for the option holding ``value``, ``(False, None)`` if none does."""
        for option, interval in zip(self.options, self.intervals):
            if interval is not None:
                number = _number(value)
                if number is None or _missing(value):
                    continue
                low, high, closed = interval
                if low <= number < high or (closed and number == high):
                    return True, option
            elif _same(value, option):
                return True, option
        # The last bin of a column is closed on the right even when shown as a sub-bin label.
        for option, interval in zip(self.options, self.intervals):
            number = _number(value)
            if interval is not None and number is not None and math.isclose(number, interval[1]):
                return True, option
        return False, None

    def mask(self, values: pd.Series) -> np.ndarray:
        """Which values of a pool column map to an option (vectorised for intervals)."""
        if all(interval is not None for interval in self.intervals):
            numbers = pd.to_numeric(values, errors='coerce').to_numpy(dtype=float)
            out = np.zeros(len(values), dtype=bool)
            for low, high, closed in self.intervals:
                out |= (numbers >= low) & ((numbers < high) | (closed & (numbers <= high)))
            return out
        uniques = pd.unique(values.astype(object))
        good = {index for index, value in enumerate(uniques) if self.choice(value)[0]}
        codes = pd.Index(uniques).get_indexer(values.astype(object))
        return np.isin(codes, list(good))


def _condition_mask(values: pd.Series, condition: Any, numeric: bool = False) -> np.ndarray:
    """Mask of pool values meeting a parsed condition: an interval, a set or one value."""
    if isinstance(condition, tuple) and len(condition) == 3:
        low, high, closed = condition
        numbers = pd.to_numeric(values, errors='coerce').to_numpy(dtype=float)
        return (numbers >= low) & ((numbers < high) | ((numbers <= high) & closed))
    options = condition if isinstance(condition, list) else [condition]
    return EnumMapper(options, numeric).mask(values)


def _parse_condition_value(text: str) -> Any:
    text = text.strip()
    interval = _parse_label(text)
    if interval is not None:
        return interval
    if text.startswith('[') and text.endswith(']'):
        try:
            return list(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            return text
    if text in ('True', 'False'):
        return text == 'True'
    number = _number(text)
    return text if number is None else text


def parse_cell(text: str, columns: Sequence[str] = ()) -> dict[str, Any]:
    """``'user_age in [35, 45) & gender = Female'`` -> ``{'user_age': (35, 45, False), ...}``.

    Args:
        text (str):
            A cell as the guidance renders it.
        columns (list of str):
            The column names: a part starts only at ``' & <column> = '`` or
            ``' & <column> in '``, so a category holding ``' & '`` stays whole.
    """
    conditions = {}
    if columns:
        names = '|'.join(re.escape(str(c)) for c in sorted(columns, key=len, reverse=True))
        parts = re.split(rf' & (?=(?:{names}) (?:=|in) )', text)
    else:
        parts = text.split(' & ')
    for part in parts:
        if ' = ' in part:
            column, value = part.split(' = ', 1)
        elif ' in ' in part:
            column, value = part.split(' in ', 1)
        else:
            continue
        conditions[column.strip()] = _parse_condition_value(value)
    return conditions


# --------------------------------------------------------------------------- data
@dataclass
class OracleData:
    """The held-out real records the oracle samples from.

    Args:
        tables (dict[str, pandas.DataFrame]):
            One table, or a parent and a child table (households with derived columns
            computed, and persons).
        parent (str or None):
            The parent table (households).
        child (str or None):
            The child table (persons).
        primary_key (str or None):
            The parent's key column.
        foreign_key (str or None):
            The child's column holding the parent's key.
    """

    tables: dict[str, pd.DataFrame]
    parent: str | None = None
    child: str | None = None
    primary_key: str | None = None
    foreign_key: str | None = None
    _members: dict[Any, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.child is not None:
            persons = self.tables[self.child].reset_index(drop=True)
            self.tables[self.child] = persons
            self.tables[self.parent] = self.tables[self.parent].reset_index(drop=True)
            groups = persons.groupby(self.foreign_key, sort=False).indices
            self._members = {key: list(rows) for key, rows in groups.items()}
            keys = self.tables[self.parent][self.primary_key]
            self._sizes = keys.map(lambda key: len(self._members.get(key, []))).to_numpy()

    @property
    def is_households(self) -> bool:
        """bool: Whether the pool holds households with their persons."""
        return self.child is not None

    def members(self, household_row: int) -> list[int]:
        """Row positions (in the child table) of one household's persons."""
        key = self.tables[self.parent][self.primary_key].iloc[household_row]
        return self._members.get(key, [])

    def household_sizes(self) -> np.ndarray:
        """Persons per pool household."""
        return self._sizes

    def table(self, name: str | None) -> pd.DataFrame:
        """The pool table ``name`` (the only one when None or unknown)."""
        if name in self.tables:
            return self.tables[name]
        return self.tables[self.parent] if self.parent else next(iter(self.tables.values()))


# --------------------------------------------------------------------------- answers
class _Writer:
    """Writes one reply: fills schema properties from pool records, then corrupts fields."""

    def __init__(self, rng: np.random.Generator, corruption: float, stats: Counter,
                 numeric: Sequence[str] = ()):
        self.rng = rng
        self.corruption = float(corruption)
        self.stats = stats
        self.numeric = set(numeric)

    def corrupt(self) -> bool:
        self.stats['fields'] += 1
        if self.corruption > 0 and self.rng.random() < self.corruption:
            self.stats['fields_corrupted'] += 1
            return True
        return False

    def random_value(self, schema: Mapping[str, Any], bounds: Any = None) -> Any:
        if 'enum' in schema:
            return schema['enum'][int(self.rng.integers(len(schema['enum'])))]
        if schema.get('type') == 'array' and 'items' in schema:
            if bounds is not None and len(bounds) >= 2:
                edges = list(bounds)
                position = int(self.rng.integers(len(edges) - 1))
                return [edges[position], edges[position + 1]]
            return [0, 1]
        if schema.get('type') == 'integer':
            return int(self.rng.integers(1, 11))
        return ''

    def record(self, properties: Mapping[str, Any], row: Mapping[str, Any] | None,
               ranges: Mapping[str, list] | None = None, skip: Sequence[str] = ()) -> dict:
        """One record of ``properties`` from a pool row (None: random), corrupted."""
        out = {}
        for name, schema in properties.items():
            if name in skip:
                continue
            options = schema.get('enum')
            if options is not None and len(options) == 1:
                out[name] = options[0]
                continue
            edges = (ranges or {}).get(name)
            value = None
            found = False
            if row is not None and name in row:
                if options is not None:
                    found, value = EnumMapper(options, name in self.numeric).choice(row[name])
                elif edges is not None:
                    found, value = _range_of(row[name], edges)
            if self.corrupt() or not found:
                value = self.random_value(schema, edges)
            out[name] = value
        return out


def _range_of(value: Any, edges: Sequence[Any]) -> tuple[bool, list | None]:
    number = _number(value)
    if number is None or _missing(value):
        return False, None
    numbers = [float(edge) for edge in edges]
    for position in range(len(numbers) - 1):
        last = position == len(numbers) - 2
        if numbers[position] <= number < numbers[position + 1] or (
                last and number <= numbers[-1]):
            return True, [edges[position], edges[position + 1]]
    return False, None


def _data_block(text: str) -> dict[str, Any]:
    match = _DATA_BLOCK.search(text)
    if match is None:
        return {}
    try:
        block = json.loads(match.group(1))
    except json.JSONDecodeError:
        return {}
    return block if isinstance(block, dict) else {}


def _columns(block: Mapping[str, Any], key: str) -> list[str]:
    return [str(column.get('name')) for column in block.get(key, []) if isinstance(column, dict)]


def _ranges(block: Mapping[str, Any], key: str) -> dict[str, list]:
    out = {}
    for column in block.get(key, []):
        if isinstance(column, dict) and 'bin_edges' in column:
            out[str(column['name'])] = list(column['bin_edges'])
    return out


def _numeric_columns(block: Mapping[str, Any]) -> set:
    """Names of the numeric columns of the prompt's data block (their labels are intervals)."""
    return {str(column.get('name')) for key in ('columns', 'member_columns')
            for column in block.get(key, []) if isinstance(column, dict)
            and column.get('type') == 'numerical'}


def _split_properties(properties: Mapping[str, Any], columns: Sequence[str]):
    """Split a record schema into column properties and the others (weight, size, members)."""
    own = {name: schema for name, schema in properties.items() if name in columns}
    others = {name: schema for name, schema in properties.items() if name not in columns}
    return own, others


class OracleAnswerer:
    """Builds the oracle's reply to one request (the part of the server without HTTP).

    Args:
        data (OracleData):
            The held-out records.
        corruption (float):
            Share of the written fields replaced by random valid values (0 to 1).
        seed (int):
            Seed; each request also mixes in the request's own ``seed``.
    """

    def __init__(self, data: OracleData, corruption: float = 0.0, seed: int = 0):
        self.data = data
        self.corruption = float(corruption)
        self.seed = int(seed)
        self.stats: Counter = Counter()
        self._lock = threading.Lock()

    def answer(self, messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any],
               request_seed: int | None = None, request_index: int = 0) -> tuple[str, dict]:
        """Return ``(kind, reply object)`` for a request's messages and reply schema."""
        rng = np.random.default_rng([self.seed, int(request_seed or 0) % (2**32), request_index])
        stats: Counter = Counter()
        writer = _Writer(rng, self.corruption, stats)
        user = '\n'.join(str(m.get('content') or '') for m in messages if m.get('role') == 'user')
        properties = schema.get('properties', {})
        if 'groups' in properties:
            kind, reply = 'copula', self._copula(user, schema, rng)
        elif 'proposals' in properties:
            kind, reply = 'free', self._free(user, schema, writer)
        elif properties and all(name.startswith('anchor_') for name in properties):
            kind, reply = 'anchored', self._anchored(user, schema, writer)
        else:
            kind, reply = 'unknown', {}
        with self._lock:
            self.stats.update(stats)
            self.stats[f'{kind}_requests'] += 1
        return kind, reply

    # ---------------------------------------------------------------- anchored
    def _anchored(self, user: str, schema: Mapping[str, Any], writer: _Writer) -> dict:
        block = _data_block(user)
        writer.numeric = _numeric_columns(block)
        constraints = {}
        fixed: dict[str, dict] = {}
        for key, quoted, rest in _ANCHOR_LINE.findall(user):
            try:
                shown = json.loads(quoted)
            except json.JSONDecodeError:
                shown = {}
            fixed[key] = shown if isinstance(shown, dict) else {}
            found = _SATISFY.search(rest)
            if found:
                try:
                    constraints[key] = [str(item) for item in json.loads(found.group(1))]
                except json.JSONDecodeError:
                    constraints[key] = []
        reply = {}
        for key, array in schema['properties'].items():
            item = array.get('items', {})
            count = int(array.get('minItems', 1))
            shown = fixed.get(key, {})
            if self.data.is_households:
                reply[key] = self._households(block, item, count, constraints.get(key, []),
                                              writer, shown)
            else:
                reply[key] = self._records(block, item, count, writer, shown)
        return reply

    @staticmethod
    def _fixed_masks(frame: pd.DataFrame, properties: Mapping[str, Any],
                     shown: Mapping[str, Any], numeric: set) -> list[np.ndarray]:
        """Masks of the rows meeting an anchor's fixed values.

        The values are the single-value enums of the schema (a reply that repeats them) and
        the values quoted in the anchor's line (a reply that leaves them out).
        """
        conditions = {name: s['enum'][0] for name, s in properties.items()
                      if len(s.get('enum', ())) == 1}
        for name, value in shown.items():
            if not isinstance(value, (dict, list)):
                conditions.setdefault(name, value)
        return [EnumMapper([value], name in numeric).mask(frame[name])
                for name, value in conditions.items() if name in frame]

    def _conditions_mask(self, frame: pd.DataFrame, masks: list[np.ndarray],
                         rng: np.random.Generator, count: int) -> np.ndarray:
        """Rows drawn (with replacement) among those meeting the most conditions."""
        if masks:
            score = np.sum(masks, axis=0)
            best = score.max()
            if best < len(masks):
                self.stats['relaxed_anchors'] += 1
            candidates = np.flatnonzero(score == best)
        else:
            candidates = np.arange(len(frame))
        return rng.choice(candidates, size=count, replace=True)

    def _records(self, block: Mapping[str, Any], item: Mapping[str, Any], count: int,
                 writer: _Writer, shown: Mapping[str, Any] | None = None) -> list[dict]:
        columns = _columns(block, 'columns')
        frame = self.data.table(block.get('table'))
        properties = item.get('properties', {})
        own, others = _split_properties(properties, columns)
        masks = self._fixed_masks(frame, own, shown or {}, writer.numeric)
        rows = self._conditions_mask(frame, masks, writer.rng, count)
        out = []
        for row in rows:
            record = writer.record(own, frame.iloc[int(row)].to_dict())
            record.update(self._meta(others, writer))
            out.append({name: record[name] for name in properties})
        return out

    @staticmethod
    def _meta(others: Mapping[str, Any], writer: _Writer) -> dict:
        """Weights: every sampled record counts once (duplicates are merged by the planner)."""
        out = {}
        for name, schema in others.items():
            options = schema.get('enum')
            if options is None:
                continue
            value = options[len(options) // 2]
            out[name] = writer.random_value(schema) if writer.corrupt() else value
        return out

    def _derived_masks(self, frame: pd.DataFrame, constraints: Sequence[str]) -> list:
        masks = []
        for text in constraints:
            match = _CONSTRAINT.match(text)
            if match is None or match.group(1) not in frame:
                continue
            masks.append(_condition_mask(frame[match.group(1)],
                                         _parse_condition_value(match.group(2))))
        return masks

    def _households(self, block: Mapping[str, Any], item: Mapping[str, Any], count: int,
                    constraints: Sequence[str], writer: _Writer,
                    shown: Mapping[str, Any] | None = None) -> list[dict]:
        data = self.data
        households = data.tables[data.parent]
        persons = data.tables[data.child]
        columns = _columns(block, 'columns')
        person_columns = _columns(block, 'member_columns')
        properties = item.get('properties', {})
        own, others = _split_properties(properties, columns)
        members_key = next((name for name, s in others.items() if s.get('type') == 'array'
                            and s.get('items', {}).get('type') == 'object'), None)
        anchor_key = next((name for name, s in others.items() if s.get('type') == 'object'),
                          None)
        size_key = next((name for name, s in others.items() if name not in (members_key,
                         anchor_key) and 'enum' in s and all(
                             isinstance(v, int) for v in s['enum'])
                         and not _is_weight(s)), None)
        sizes = list(others[size_key]['enum']) if size_key else None
        shown = dict(shown or {})
        member_shown = shown.pop('member', None) if 'member' in shown else None
        shown = shown.pop('household', shown) if 'household' in shown else shown
        masks = self._fixed_masks(households, own, shown, writer.numeric)
        masks += self._derived_masks(households, constraints)
        if sizes is not None:
            masks.append(np.isin(data.household_sizes(), sizes))
        anchor_schema = others.get(anchor_key, {}).get('properties', {}) if anchor_key else {}
        person_masks = (self._fixed_masks(persons, anchor_schema, member_shown or {},
                                          writer.numeric) if anchor_key else [])
        if person_masks:
            person_mask = np.logical_and.reduce(person_masks)
            keys = set(persons.loc[person_mask, data.foreign_key])
            masks.append(households[data.primary_key].isin(keys).to_numpy())
        else:
            person_mask = None
        rows = self._conditions_mask(households, masks, writer.rng, count)
        item_schema = (others.get(members_key) or others.get(_other_members(others, anchor_key))
                       or {}).get('items', {})
        person_properties = item_schema.get('properties', {}) or anchor_schema
        out = []
        for row in rows:
            household = households.iloc[int(row)].to_dict()
            members = list(data.members(int(row)))
            anchored = None
            if anchor_key is not None:
                position = 0
                if person_mask is not None:
                    matching = [i for i, m in enumerate(members) if person_mask[m]]
                    position = int(writer.rng.choice(matching)) if matching else 0
                anchored = members.pop(position) if members else None
            record = writer.record(own, household)
            size = len(members) + (1 if anchor_key is not None else 0)
            if size_key is not None:
                if writer.corrupt():
                    size = int(writer.random_value(others[size_key]))
                elif sizes and size not in sizes:
                    size = int(sizes[0])
                record[size_key] = size
            written = [writer.record(person_properties, persons.iloc[m].to_dict())
                       for m in members]
            room = size - (1 if anchor_key is not None else 0)
            while len(written) < room:
                written.append(writer.record(person_properties, None))
            written = written[:max(room, 0)]
            if anchor_key is not None:
                anchor_row = persons.iloc[anchored].to_dict() if anchored is not None else None
                record[anchor_key] = writer.record(anchor_schema, anchor_row)
                record[_other_members(others, anchor_key)] = written
            else:
                record[members_key] = written
            record.update(self._meta({n: s for n, s in others.items() if _is_weight(s)}, writer))
            out.append({name: record[name] for name in properties if name in record})
        del person_columns
        return out

    # ---------------------------------------------------------------- free
    def _free(self, user: str, schema: Mapping[str, Any], writer: _Writer) -> dict:
        block = _data_block(user)
        proposals = schema['properties']['proposals']
        item = proposals['items']['properties']
        values_key = next(name for name, s in item.items() if s.get('type') == 'object')
        num_key = next(name for name, s in item.items() if s.get('type') == 'integer')
        reason_key = next(name for name, s in item.items() if s.get('type') == 'string')
        values_schema = item[values_key].get('properties', {})
        total_match = _TOTAL.search(user)
        total = int(total_match.group(1)) if total_match else 100
        lines = []
        for _, text in _GUIDANCE.findall(user):
            try:
                lines.extend(str(line) for line in json.loads(text))
            except json.JSONDecodeError:
                continue
        cells = []
        for line in lines:
            match = _GUIDANCE_LINE.match(line)
            if match is None:
                continue
            deficit = float(match.group(2))
            if deficit > 0:
                cells.append((match.group(1), deficit))
        count = int(proposals.get('maxItems', 5))
        rng = writer.rng
        if cells:
            weights = np.array([deficit for _, deficit in cells])
            picks = rng.choice(len(cells), size=count, replace=True, p=weights / weights.sum())
            chosen = [cells[int(p)] for p in picks]
        else:
            chosen = [('any record', 1.0)] * count
        deficits = np.array([deficit for _, deficit in chosen])
        nums = np.maximum(np.round(total * deficits / deficits.sum()).astype(int), 1)
        out = []
        for (text, _), num in zip(chosen, nums):
            values = self._free_values(block, values_schema, text, writer)
            num_value = int(rng.integers(1, max(total, 1) + 1)) if writer.corrupt() else int(num)
            out.append({reason_key: f'oracle: a real record for {text}', values_key: values,
                        num_key: num_value})
        return {'n_proposals': len(out), 'proposals': out}

    def _free_values(self, block: Mapping[str, Any], values_schema: Mapping[str, Any],
                     cell_text: str, writer: _Writer) -> dict:
        data = self.data
        table = None
        prefix = cell_text.split(': ', 1)[0]
        if data.is_households and prefix in (data.parent, data.child):
            table, cell_text = cell_text.split(': ', 1)
        conditions = parse_cell(cell_text, _columns(block, 'columns')
                                + _columns(block, 'member_columns'))
        ranges = _ranges(block, 'columns')
        if not data.is_households:
            frame = data.table(block.get('table'))
            masks = [_condition_mask(frame[c], v) for c, v in conditions.items() if c in frame]
            row = int(self._conditions_mask(frame, masks, writer.rng, 1)[0])
            return writer.record(values_schema, frame.iloc[row].to_dict(), ranges)
        households = data.tables[data.parent]
        persons = data.tables[data.child]
        if table == data.child:
            person_masks = [_condition_mask(persons[c], v) for c, v in conditions.items()
                            if c in persons]
            if person_masks:
                keys = set(persons.loc[np.logical_and.reduce(person_masks), data.foreign_key])
                masks = [households[data.primary_key].isin(keys).to_numpy()]
            else:
                masks = []
        else:
            masks = [_condition_mask(households[c], v) for c, v in conditions.items()
                     if c in households]
        columns = _columns(block, 'columns')
        own, others = _split_properties(values_schema, columns)
        members_key = next((n for n, s in others.items() if s.get('type') == 'array'), None)
        size_key = next((n for n, s in others.items() if 'enum' in s), None)
        if size_key is not None:
            masks.append(np.isin(data.household_sizes(), others[size_key]['enum']))
        row = int(self._conditions_mask(households, masks, writer.rng, 1)[0])
        record = writer.record(own, households.iloc[row].to_dict(), ranges)
        members = data.members(row)
        size = len(members)
        if size_key is not None:
            if writer.corrupt():
                size = int(writer.random_value(others[size_key]))
            record[size_key] = size
        person_properties = others[members_key].get('items', {}).get('properties', {})
        person_ranges = _ranges(block, 'member_columns')
        written = [writer.record(person_properties, persons.iloc[m].to_dict(), person_ranges)
                   for m in members][:size]
        while len(written) < size:
            written.append(writer.record(person_properties, None, person_ranges))
        record[members_key] = written
        return {name: record[name] for name in values_schema if name in record}

    # ---------------------------------------------------------------- copula
    def _copula(self, user: str, schema: Mapping[str, Any], rng: np.random.Generator) -> dict:
        block = _data_block(user)
        groups = schema['properties']['groups']
        columns = list(groups['items']['items']['enum'])
        frame = self.data.table(block.get('table'))
        codes = {}
        for column in columns:
            if column not in frame:
                continue
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values) and values.nunique() > 12:
                values = pd.qcut(values, 6, duplicates='drop')
            codes[column] = pd.factorize(values.astype(str))[0]
        scores = []
        names = list(codes)
        for i, left in enumerate(names):
            for right in names[i + 1:]:
                scores.append((_mutual_information(codes[left], codes[right]), left, right))
        scores.sort(reverse=True)
        count = max(1, int(groups.get('maxItems', 3)))
        return {'groups': [[left, right] for _, left, right in scores[:count]]}


def _is_weight(schema: Mapping[str, Any]) -> bool:
    return list(schema.get('enum', [])) == list(range(1, 11))


def _other_members(others: Mapping[str, Any], anchor_key: str | None) -> str | None:
    if anchor_key is None:
        return None
    return next((n for n, s in others.items() if s.get('type') == 'array'), None)


def _mutual_information(left: np.ndarray, right: np.ndarray) -> float:
    table = pd.crosstab(left, right).to_numpy(dtype=float)
    total = table.sum()
    if total == 0:
        return 0.0
    joint = table / total
    outer = joint.sum(axis=1, keepdims=True) @ joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())


# --------------------------------------------------------------------------- HTTP
def _request_schema(body: Mapping[str, Any]) -> tuple[str, dict | None]:
    """The structured-output mode of a request and the reply schema it carries."""
    response_format = body.get('response_format') or {}
    kind = response_format.get('type', 'text') if isinstance(response_format, dict) else 'text'
    if kind == 'json_schema':
        return kind, (response_format.get('json_schema') or {}).get('schema')
    if kind == 'json_object' and isinstance(response_format.get('schema'), dict):
        return kind, response_format['schema']
    for message in body.get('messages', []):
        content = str(message.get('content') or '')
        if message.get('role') == 'system' and _SCHEMA_IN_TEXT in content:
            text = content.split(_SCHEMA_IN_TEXT, 1)[1].strip().splitlines()[0]
            try:
                return kind, json.loads(text)
            except json.JSONDecodeError:
                return kind, None
    return kind, None


class OracleServer:
    """The oracle behind an OpenAI-compatible HTTP endpoint on localhost, in a thread.

    Use as a context manager; :attr:`base_url` is the ``base_url`` of the client.

    Args:
        data (OracleData):
            The held-out records.
        corruption (float):
            Share of the written fields replaced by random valid values (0 to 1).
        seed (int):
            Seed of the answers.
        reject_json_schema (bool):
            Answer ``response_format={"type": "json_schema"}`` with HTTP 500 and the message of
            llama.cpp's server, as it does. Defaults to False.
        fail_every (int or None):
            Answer every ``fail_every``-th request with HTTP 503 (a transient failure the
            client retries). Defaults to None (never).
        host (str):
            Interface to listen on. Defaults to ``'127.0.0.1'``.
        port (int):
            Port; 0 (default) picks a free one.
    """

    def __init__(self, data: OracleData, corruption: float = 0.0, seed: int = 0,
                 reject_json_schema: bool = False, fail_every: int | None = None,
                 host: str = '127.0.0.1', port: int = 0):
        if not 0.0 <= float(corruption) <= 1.0:
            raise ValueError(f"The 'corruption' parameter must be in [0, 1]. Got {corruption!r}.")
        self.answerer = OracleAnswerer(data, corruption, seed)
        self.reject_json_schema = reject_json_schema
        self.fail_every = fail_every
        self.counts: Counter = Counter()
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """str: ``http://127.0.0.1:<port>/v1``."""
        host, port = self._httpd.server_address[:2]
        return f'http://{host}:{port}/v1'

    @property
    def stats(self) -> dict[str, int]:
        """dict: Request counts and answer counters (fields written and corrupted...)."""
        with self._lock:
            out = dict(self.counts)
        out.update(self.answerer.stats)
        return dict(sorted(out.items()))

    def start(self) -> OracleServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name='oracle-server')
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OracleServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _count(self, key: str) -> int:
        with self._lock:
            self.counts[key] += 1
            return self.counts['requests']

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, payload: Mapping[str, Any]) -> None:
                body = json.dumps(payload).encode('utf-8')
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                if status == 503:
                    self.send_header('Retry-After', '0')
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.rstrip('/').endswith('/models'):
                    self._send(200, {'object': 'list', 'data': [
                        {'id': 'oracle', 'object': 'model', 'owned_by': 'evaluation'}]})
                else:
                    self._send(404, {'error': {'message': f'no route {self.path}'}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get('Content-Length') or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b'{}')
                except json.JSONDecodeError:
                    self._send(400, {'error': {'message': 'the body is not JSON'}})
                    return
                if not self.path.rstrip('/').endswith('/chat/completions'):
                    self._send(404, {'error': {'message': f'no route {self.path}'}})
                    return
                index = server._count('requests')
                mode, schema = _request_schema(body)
                server._count(f'mode_{mode}')
                if mode == 'json_schema' and server.reject_json_schema:
                    server._count('rejected_json_schema')
                    self._send(500, {'error': {'code': 500, 'message': _LLAMA_CPP_REJECTION,
                                               'type': 'server_error'}})
                    return
                if server.fail_every and index % int(server.fail_every) == 0:
                    server._count('transient_failures')
                    self._send(503, {'error': {'message': 'oracle: simulated overload',
                                               'type': 'server_error'}})
                    return
                if schema is None:
                    server._count('no_schema')
                    self._send(400, {'error': {'message': 'the oracle needs a JSON schema'}})
                    return
                start = time.perf_counter()
                kind, reply = server.answerer.answer(body.get('messages', []), schema,
                                                     body.get('seed'), index)
                with server._lock:
                    server.seconds += time.perf_counter() - start
                server._count(f'answered_{kind}')
                text = json.dumps(reply, ensure_ascii=False)
                prompt_chars = sum(len(str(m.get('content') or ''))
                                   for m in body.get('messages', []))
                prompt_tokens, completion_tokens = prompt_chars // 4, len(text) // 4
                self._send(200, {
                    'id': f'oracle-{index}', 'object': 'chat.completion',
                    'created': int(time.time()), 'model': body.get('model', 'oracle'),
                    'choices': [{'index': 0, 'finish_reason': 'stop',
                                 'message': {'role': 'assistant', 'content': text}}],
                    'usage': {'prompt_tokens': prompt_tokens,
                              'completion_tokens': completion_tokens,
                              'total_tokens': prompt_tokens + completion_tokens},
                })

        return Handler
