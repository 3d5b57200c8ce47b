"""Explanations people read: exact log-odds contributions turned into points of health.

The ensemble's contributions (:meth:`models.win.ensemble.HealthEnsemble.contributions`) add up to
its log-odds exactly. People read health (0–100), not log-odds, so each account's contributions
are rescaled to points that add up to its health minus the portfolio's base health, the health
of an account whose every feature sits at the training average (the ``_base`` log-odds through
the calibrator). The calibrator is monotone, so a feature that lowers the log-odds always costs
points. Points summed per component give the learned scorecard ("usage −12, support −5").
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import numba
import numpy as np
import pandas as pd

BASE = "_base"
PLACEHOLDER = re.compile(r"\{value[^}]*\}")
# the number formats filled by numpy: [sign][,][.digits](f or %); others go through Python
NUMBER_FORMAT = re.compile(
    r"(?P<sign>[-+ ]?)(?P<grouping>,?)(?:\.(?P<digits>[0-9]))?(?P<kind>[f%])"
)
BARE = "{value}"
PLURAL = "{s}"  # a plural's "s" in a catalog description, left out for one
WHOLE, FRACTION = ",.0f", ",.1f"  # a number under a bare {value}: a count, as people read it
KINDS = ("risk", "strength")  # a driver lowers the health score or raises it
TOP_BLOCK = 512  # rows ranked together, column by column: their best-so-far stays in cache


def health_points(
    contributions: pd.DataFrame, win_probability: np.ndarray, base_probability: float
) -> pd.DataFrame:
    """Per-feature points of health; each row sums to ``100 · (p − p_base)``.

    Args:
        contributions: log-odds contributions per feature, plus the ``_base`` column.
        win_probability: the calibrated win probability of each row.
        base_probability: the calibrated probability of the ``_base`` log-odds.

    Raises:
        ValueError: the row counts differ.
    """
    p = np.asarray(win_probability, dtype=float)
    if len(p) != len(contributions):
        raise ValueError(f"{len(p)} probabilities for {len(contributions)} rows of contributions")
    # numpy throughout, and frames wrapped without a copy: a page of 100,000 rows × 150
    # features is 120 MB a copy
    keep = contributions.columns != BASE
    phi = contributions.to_numpy(dtype=float)
    if not keep.all():  # the base is the last column as the ensemble writes it: a view
        phi = phi[:, :-1] if keep[:-1].all() else phi[:, keep]
    total = phi.sum(axis=1)
    gap = 100.0 * (p - base_probability)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.abs(total) > 1e-12, gap / total, 0.0)
    return pd.DataFrame(
        phi * scale[:, None], columns=contributions.columns[keep], index=contributions.index,
        copy=False,
    )  # fmt: skip


def component_points(points: pd.DataFrame, components: dict[str, str]) -> pd.DataFrame:
    """Points summed per component (one column per component, in first-seen order)."""
    owner = pd.Index([components.get(c, "other") for c in points.columns])
    names = owner.unique()
    member = names.get_indexer(owner)[:, None] == np.arange(len(names))[None, :]
    return pd.DataFrame(
        points.to_numpy(dtype=float) @ member.astype(float),
        columns=names, index=points.index, copy=False,
    )  # fmt: skip


def describe(template: str, value: object, blank: str | None = None) -> str:
    """A catalog description with the account's value filled in, as people read it.

    A number under a bare ``{value}`` is a count: whole, with thousands separators ("1,234
    events", not "1234.0"), or to one decimal when it is not whole. A text value reads with
    spaces for underscores ("financial services", not "financial_services"). ``{s}`` in a
    template is a plural's "s", left out when the number reads 1 ("1 invoice", "2 invoices").
    A blank value reads as ``blank`` (the feature's own words for it: "no earlier renewal")
    or, without one, as the description with "…" for its number and "(not known)" after it.
    """
    try:
        if value is None or value is pd.NA or value != value:  # NaN is not equal to itself
            return blank if blank is not None else unknown(template)
        if PLURAL in template:  # one as printed: exactly 1 under a bare {value}, else rounded
            number = float(value) if isinstance(value, (int, float, np.number)) else None
            shown = number if number is None or BARE in template else round(number)
            template = template.replace(PLURAL, "" if shown in (1, -1) else "s")
        if isinstance(value, str):
            value = value.replace("_", " ")
        elif isinstance(value, (int, float, np.number)) and BARE in template:
            whole = bool(np.isfinite(value)) and float(value) == int(value)
            template = template.replace(BARE, "{value:" + (WHOLE if whole else FRACTION) + "}")
        return template.format(value=value)
    except (ValueError, TypeError, OverflowError):  # a numeric format on text, or the reverse
        return PLACEHOLDER.sub(str(value), template)


def unknown(template: str) -> str:
    """A description whose value is blank and has no words of its own for that: "ARR
    changed … at the last renewal (not known)"."""
    return named(template) + " (not known)"


def named(template: str) -> str:
    """A feature's description as the name of what it measures, no account's value in it:
    "… days since anyone used the product"."""
    return PLACEHOLDER.sub("…", template.replace(PLURAL, "s"))


def describe_all(template: str, values: pd.Series, blank: str | None = None) -> np.ndarray:
    """:func:`describe` of every value at once: an object array of the same text, byte for byte.

    Each distinct value is described once. Numbers are formatted by numpy over the whole column
    for the formats the catalog uses (``{value}``, ``{value:.1f}``, ``{value:,.0f}``,
    ``{value:+.0%}`` …), rounded as Python rounds; :func:`describe` itself fills the rest (other
    formats, categories, flags, a number on a near-tie of its last digit, beyond 2^50 or
    infinite).
    """
    texts, inverse, _ = _describe_distinct(template, values, blank)
    return texts[inverse]


def _describe_distinct(
    template: str, values: pd.Series, blank: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The text of each distinct value, which of them each value is (``texts[inverse]`` is
    every value's), and the distinct values as :func:`describe` is given them
    (``objects[inverse]``: every value as a Python object, made once per distinct value)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        keys = values.cat.codes.to_numpy()
    elif isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        numbers = values.to_numpy()
        # equal bits, equal text (0.0 and -0.0 are equal numbers but read differently)
        keys = numbers.view(f"i{dtype.itemsize}") if dtype.kind == "f" else numbers
    else:  # equal objects may still read differently (1, 1.0 and True): each described
        objects = values.to_numpy(dtype=object)
        every = np.arange(len(objects))
        return _describe_each(template, values, objects, blank), every, objects
    inverse, distinct = pd.factorize(keys)
    first = np.empty(len(distinct), dtype="int64")
    first[inverse] = np.arange(len(inverse))  # any row of each value: they read the same
    sample = values.iloc[first]
    objects = sample.to_numpy(dtype=object)
    return _describe_each(template, sample, objects, blank), inverse, objects


def _describe_each(
    template: str, values: pd.Series, objects: np.ndarray, blank: str | None = None
) -> np.ndarray:
    """:func:`describe` of each value: numbers in numpy where it is exact, the rest one by one."""
    texts = np.empty(len(objects), dtype=object)
    pieces = _pieces(template)
    dtype = values.dtype
    if pieces is None or not (isinstance(dtype, np.dtype) and dtype.kind in "fiu"):
        texts[:] = [describe(template, v, blank) for v in objects]
        return texts
    numbers = values.to_numpy()
    missing = np.isnan(numbers) if dtype.kind == "f" else np.zeros(len(numbers), dtype=bool)
    texts[missing] = blank if blank is not None else unknown(template)
    present = np.flatnonzero(~missing)
    filled, exact = _fill_numbers(pieces, numbers[present], BARE in template)
    texts[present[exact]] = filled[exact]
    texts[present[~exact]] = [describe(template, v, blank) for v in objects[present[~exact]]]
    return texts


def _pieces(template: str) -> list[tuple[str, str | None]] | None:
    """The template as (literal text, format of a ``{value}`` after it, :data:`PLURAL` for a
    plural's "s", or None) pairs; None when it holds any other field, a conversion or a format
    numpy does not fill."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:  # unbalanced braces: describe raises or falls back as before
        return None
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
        elif (
            field == "value" and conversion is None and (not spec or NUMBER_FORMAT.fullmatch(spec))
        ):
            pieces.append((literal, spec or ""))
        elif field == "s" and not spec and conversion is None:
            pieces.append((literal, PLURAL))
        else:
            return None
    if sum(spec == PLURAL for _, spec in pieces) != template.count(PLURAL):
        return None  # "{s}" inside escaped braces: describe's own replace decides
    return pieces


def _fill_numbers(
    pieces: list[tuple[str, str | None]], numbers: np.ndarray, bare: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The pieces joined over ``numbers`` (none missing), and where the text is exact.

    A plural's "s" is left out where the number reads one, as :func:`describe` decides it:
    exactly ±1 when the template has a bare ``{value}`` (``bare``), else rounded to ±1."""
    text = np.full(len(numbers), "", dtype="U1")
    exact = np.ones(len(numbers), dtype=bool)
    if not len(numbers):  # numpy's zfill fails on an empty array
        return text, exact
    for literal, spec in pieces:
        text = np.strings.add(text, literal)
        if spec == PLURAL:
            value = numbers.astype("float64")
            shown = value if bare else np.round(value)  # half to even, as Python's round
            text = np.strings.add(text, np.where(np.abs(shown) == 1, "", "s"))
            exact &= np.isfinite(value)  # round(inf) raises in describe: it decides
        elif spec is not None:
            formatted, fits = _format_numbers(numbers, spec)
            text = np.strings.add(text, formatted)
            exact &= fits
    return text, exact


def _format_numbers(numbers: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """``format(number, spec)`` for each number (``spec`` empty or of :data:`NUMBER_FORMAT`),
    and where the text is sure to be Python's."""
    if not spec:  # a count (see describe): whole with separators, else to one decimal
        whole_text, whole_fits = _format_numbers(numbers, WHOLE)
        part_text, part_fits = _format_numbers(numbers, FRACTION)
        value = numbers.astype("float64")
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(value) & (value == np.trunc(value))
        return np.where(whole, whole_text, part_text), np.where(whole, whole_fits, part_fits)
    match = NUMBER_FORMAT.fullmatch(spec)
    if match is None:
        raise ValueError(f"format {spec!r} is not one numpy fills")
    sign, grouping, digits, kind = match.group("sign", "grouping", "digits", "kind")
    decimals = 6 if digits is None else int(digits)
    value = numbers.astype("float64")  # as int.__format__ does for "f" and "%"
    with np.errstate(invalid="ignore", over="ignore"):
        if kind == "%":
            value = value * 100.0  # the very product Python formats
        scaled = value * 10.0**decimals
        fits = np.isfinite(scaled) & (np.abs(scaled) < 2.0**50)
        if decimals:  # the product is rounded in binary: near a tie it may round the other way
            tie = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5)
            fits &= tie > 4 * np.spacing(np.abs(scaled))
        # to even, as Python rounds an exact tie
        magnitude = np.where(fits, np.abs(np.rint(scaled)), 0).astype("int64")
    whole, fraction = np.divmod(magnitude, 10**decimals)
    text = _thousands(whole) if grouping else whole.astype(str)
    if decimals:
        text = np.strings.add(
            text, np.strings.add(".", np.strings.zfill(fraction.astype(str), decimals))
        )
    text = np.strings.add(np.where(np.signbit(value), "-", "" if sign == "-" else sign), text)
    return (np.strings.add(text, "%") if kind == "%" else text), fits


def _thousands(whole: np.ndarray) -> np.ndarray:
    """Non-negative integers with a comma between groups of three digits ("1,234,567")."""
    text = np.full(len(whole), "", dtype="U1")
    groups = (len(str(int(whole.max()))) + 2) // 3 if len(whole) else 1
    for level in range(groups - 1, -1, -1):
        digits = ((whole // 1000**level) % 1000).astype(str)
        shown = whole >= 1000**level if level else np.ones(len(whole), dtype=bool)
        padded = whole >= 1000 ** (level + 1)  # a group after the first has three digits
        digits = np.where(padded, np.strings.zfill(digits, 3), digits)
        if level:
            digits = np.strings.add(digits, ",")
        text = np.where(shown, np.strings.add(text, digits), text)
    return text


def top_drivers(
    points: pd.DataFrame,
    values: pd.DataFrame,
    descriptions: dict[str, str],
    components: dict[str, str],
    k: int = 3,
    blanks: dict[str, str] | None = None,
    columns: Sequence[str] | None = None,
    kinds: Sequence[str] = KINDS,
    value_text: Callable[[object], str | None] | None = None,
) -> pd.DataFrame:
    """The ``k`` largest risks (negative points) and strengths (positive) per row, in words.

    ``blanks`` gives a feature's words for a blank value ("no earlier renewal"); see
    :func:`describe`. ``columns``: rank among these columns of ``points`` only (in their
    order; ties go by it), without copying them out of ``points`` first. ``kinds``: only
    these of ``risk`` and ``strength`` (what raises a chance to grow needs no risks put in
    words). ``value_text``: how the ``value`` column shows a value (called once per distinct
    value of a feature, not once per row); without it, the value itself.

    Returns one row per (row, driver), ordered by row, then risks before strengths, then rank:
    ``row`` (the index label of ``points``), ``kind`` (``risk`` / ``strength``), ``rank``
    (1 = largest), ``feature``, ``component``, ``value``, ``points`` and ``text``. Ties are
    broken by column order, so the order is deterministic. The text is filled a feature at a
    time, over every row it is a driver of (:func:`describe_all`).

    Raises:
        KeyError: a column of ``points`` is not in ``values``.
    """
    among = None if columns is None else points.columns.get_indexer(list(columns))
    if among is not None and (among < 0).any():
        raise KeyError(f"{[c for c in columns if c not in points.columns][:10]} not in points")
    names = np.asarray(points.columns if among is None else points.columns[among])
    absent = [name for name in names if name not in values.columns]
    if absent:
        raise KeyError(f"{absent[:10]} not in the values")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {KINDS}, got {list(kinds)}")
    matrix = points.to_numpy()
    chosen = _ranked(matrix, k, among)  # per row: its risks, then its strengths
    shown = chosen.shape[1] // 2
    sides = [side for side in KINDS if side in kinds]
    if len(sides) < len(KINDS):  # one side only
        chosen = chosen[:, :shown] if sides == ["risk"] else chosen[:, shown:]
    per_row = len(sides) * shown
    cols = chosen.reshape(-1)
    rows = np.repeat(np.arange(len(matrix)), per_row)
    held = np.maximum(cols, 0)  # −1: a row with fewer values than places
    got = matrix[rows, held if among is None else among[held]]
    is_risk = np.tile(np.repeat([side == "risk" for side in sides], shown), len(matrix))
    keep = np.where(is_risk, got < 0, got > 0) & (cols >= 0)
    rows, cols, got, is_risk = rows[keep], cols[keep], got[keep], is_risk[keep]
    ranks = np.tile(np.arange(per_row) % shown + 1, len(matrix))[keep]
    picked = np.empty(len(cols), dtype=object)
    distinct, codes = [], np.empty(len(cols), dtype="int64")
    position = values.columns.get_indexer(names)
    # grouped by feature, rows in order within each: a radix sort on 16-bit column numbers
    narrow = cols.astype(np.int16) if len(names) < 2**15 else cols
    order = np.argsort(narrow, kind="stable")
    seen = 0
    for where in np.split(order, np.flatnonzero(np.diff(cols[order])) + 1):
        if not len(where):  # no drivers at all
            continue
        j = cols[where[0]]
        column = values.iloc[rows[where], position[j]]
        name = names[j]
        texts, inverse, objects = _describe_distinct(
            descriptions.get(name, name), column, (blanks or {}).get(name)
        )
        if value_text is not None:
            objects = np.array([value_text(v) for v in objects], dtype=object)
        picked[where] = objects[inverse]
        distinct.append(texts)
        codes[where] = inverse + seen
        seen += len(texts)
    owners = np.array([components.get(name, "other") for name in names], dtype=object)
    labels = pd.Series(np.array(KINDS, dtype=object))
    return pd.DataFrame(
        {
            "row": points.index.to_numpy()[rows],
            "kind": labels.array.take((~is_risk).astype("int64")),  # as a scalar broadcast
            "rank": ranks,
            "feature": _strings(names, cols),
            "component": _strings(owners, cols),
            "value": picked,
            "points": got,
            "text": _strings(np.concatenate([np.empty(0, dtype=object), *distinct]), codes),
        }
    )


def _strings(options: np.ndarray, codes: np.ndarray) -> object:
    """``options[codes]`` as the column pandas would make of it, without a Python string per
    row: the dtype is inferred from the options picked, then they are taken by code."""
    counts = np.bincount(codes, minlength=len(options))
    used = np.flatnonzero(counts)
    if not len(used):
        return options[:0]
    renumber = np.cumsum(counts > 0) - 1
    return pd.Series(options[used]).array.take(renumber[codes])


def _ranked(matrix: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
    """Per row, the columns of its ``k`` smallest values then of its ``k`` largest, each in
    that order, ties by column order (a stable argsort's first ``k`` each way); NaN is never
    picked, and a row with fewer than ``k`` values has −1 in the places left. With ``among``
    (column positions), only those columns, and the result indexes ``among``.

    One pass over the columns per block of rows (:func:`_top_k`, jitted, both cores), keeping
    each row's ``k`` best each way, instead of sorting each row.
    """
    width = matrix.shape[1] if among is None else len(among)
    shown = min(k, width)
    chosen = np.full((len(matrix), 2 * shown), -1, dtype="int64")
    if not shown or not len(matrix):
        return chosen
    columns = np.arange(width, dtype="int64") if among is None else np.asarray(among, "int64")
    values = matrix if matrix.dtype == np.float64 else matrix.astype("float64")
    _top_k(values, columns, shown, chosen)
    return chosen


@numba.njit(cache=True, parallel=True)
def _top_k(  # pragma: no cover - jitted
    matrix: np.ndarray, columns: np.ndarray, k: int, chosen: np.ndarray
) -> None:
    rows = matrix.shape[0]
    blocks = (rows + TOP_BLOCK - 1) // TOP_BLOCK
    for b in numba.prange(blocks):
        first, stop = b * TOP_BLOCK, min(rows, (b + 1) * TOP_BLOCK)
        # per row and side (0: the smallest; 1: the largest, kept as the smallest negated):
        # the k best so far, how many, and the bar a value must pass to enter
        best = np.empty((stop - first, 2, k))
        count = np.zeros((stop - first, 2), dtype=np.int64)
        bar = np.full((stop - first, 2), np.inf)
        # column by column over the block: reads a column's run of rows whatever the layout
        for position in range(len(columns)):
            j = columns[position]
            for r in range(first, stop):
                v = matrix[r, j]
                i = r - first
                _enter(best, count, bar, i, 0, v, chosen, r, position, k)
                _enter(best, count, bar, i, 1, -v, chosen, r, position, k)


@numba.njit(cache=True, inline="always")
def _enter(  # pragma: no cover - jitted
    best: np.ndarray, count: np.ndarray, bar: np.ndarray, i: int, side: int, v: float,
    chosen: np.ndarray, r: int, position: int, k: int,
) -> None:  # fmt: skip
    """Put ``v`` (column ``position``) among row ``i``'s ``k`` smallest so far on ``side`` if
    it belongs there (``chosen[r]`` from ``side · k``): after equal values, so ties go by
    column order; NaN compares false and never enters."""
    n = count[i, side]
    if not (v < bar[i, side] or (n < k and v == v)):
        return
    offset = side * k
    at = n if n < k else k - 1
    while at > 0 and v < best[i, side, at - 1]:
        if at < k:
            best[i, side, at] = best[i, side, at - 1]
            chosen[r, offset + at] = chosen[r, offset + at - 1]
        at -= 1
    best[i, side, at] = v
    chosen[r, offset + at] = position
    count[i, side] = min(n + 1, k)
    if count[i, side] == k:
        bar[i, side] = best[i, side, k - 1]
