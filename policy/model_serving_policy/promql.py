"""The metric names a PromQL expression selects, without a Prometheus at hand.

A small lexer, not a parser: it drops strings, comments, label matchers (``{...}``), ranges and subquery steps
(``[...]``) and the label lists of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``, then takes
every remaining identifier that is not a keyword, an aggregation, a function (followed by ``(``), or a
number. A metric selected by name inside the braces (``{__name__="x"}``) counts too. That is what Prometheus'
own parser reports for the expressions the program writes (``tests/integration`` compares the two through
``cluster-assets promql``).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<braces>\{(?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
  | (?P<brackets>\[[^\]]*\])
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?(?:ms|s|m|h|d|w|y)*|\.[0-9]+)
  | (?P<paren>\()
  | (?P<other>\S)
    """,
    re.VERBOSE,
)
# Keywords that are no metric (aggregations may be followed by their by/without clause rather than a parenthesis),
# and those followed by a parenthesised list of label names.
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk"}
_AGGREGATIONS |= {"quantile", "limitk", "limit_ratio"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end", "step", *_AGGREGATIONS}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def metric_names(expr: str) -> list[str]:
    """The metric names ``expr`` selects, sorted and without repeats."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    names: set[str] = set()
    skip_list = False
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1][0] if i + 1 < len(tokens) else None
        if kind == "braces":
            names.update(a or b for a, b in _NAME_MATCHER.findall(text))
            skip_list = False
        elif skip_list:
            if kind == "other" and text == ")":
                skip_list = False
        elif kind == "name":
            lowered = text.lower()
            if lowered in _LABEL_LISTS:
                skip_list = following == "paren"
            elif lowered not in _KEYWORDS and following != "paren":
                names.add(text)
    return sorted(names)
