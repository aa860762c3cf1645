"""A multi grader's `calculate_output` read as a weighted sum of its graders, or refused: parsed by Python's own
parser into a syntax tree and walked, never evaluated.

Accepted: numbers, the graders' names, `+`, `-`, `*` and `/` where the result stays linear in the names (a number
times a name, a sum divided by a number: `0.7 * exact + 0.3 * fuzzy`, `(a + b) / 2`), with no constant term and no
negative weight. Anything else (`min`, `max`, `**`, a product of two graders, an unknown name) is not a weighted sum.
"""

import ast
import math
from collections.abc import Collection

MAX_FORMULA_CHARS = 500  # the parser's work and the tree's depth stay small
MAX_WEIGHT = 1000.0  # a reward component's largest weight (methods.RewardComponent)

_Linear = tuple[dict[str, float], float]  # (weight by name, constant term)


class NotAWeightedSum(ValueError):
    """The formula is not a weighted sum of the graders; the message says why."""


def weighted_sum(formula: str, names: Collection[str]) -> dict[str, float]:
    """The weight of each of `names` in `formula` (0 for a name it leaves out), or NotAWeightedSum."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise NotAWeightedSum(f"must be at most {MAX_FORMULA_CHARS} characters; it is {len(formula)}")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise NotAWeightedSum(f"not a formula: {type(exc).__name__}") from None
    weights, constant = _linear(tree.body, frozenset(names))
    if constant != 0:
        raise NotAWeightedSum("a weighted sum of the graders has no constant term")
    for name, weight in weights.items():
        if not 0 <= weight <= MAX_WEIGHT:
            raise NotAWeightedSum(f"the weight of {name!r} must be between 0 and {MAX_WEIGHT:g}; it is {weight:g}")
    if sum(weights.values()) <= 0:
        raise NotAWeightedSum("the weights must not sum to zero")
    return {name: weights.get(name, 0.0) for name in names}


def _linear(node: ast.AST, names: frozenset[str]) -> _Linear:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            return {}, _finite(float(node.value))
        except OverflowError:
            raise NotAWeightedSum("numbers must be finite") from None
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise NotAWeightedSum(f"{node.id!r} is not one of the graders ({', '.join(sorted(names))})")
        return {node.id: 1.0}, 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        return _scaled(_linear(node.operand, names), -1.0 if isinstance(node.op, ast.USub) else 1.0)
    if isinstance(node, ast.BinOp):
        return _binary(node, names)
    raise NotAWeightedSum(f"{type(node).__name__} is not part of a weighted sum (numbers, graders, + - * /)")


def _binary(node: ast.BinOp, names: frozenset[str]) -> _Linear:
    left, right = _linear(node.left, names), _linear(node.right, names)
    if isinstance(node.op, ast.Add | ast.Sub):
        sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
        weights = dict(left[0])
        for name, weight in right[0].items():
            weights[name] = weights.get(name, 0.0) + sign * weight
        return weights, _finite(left[1] + sign * right[1])
    if isinstance(node.op, ast.Mult):
        if left[0] and right[0]:
            raise NotAWeightedSum("a product of graders is not a weighted sum")
        return _scaled(right, left[1]) if not left[0] else _scaled(left, right[1])
    if isinstance(node.op, ast.Div):
        if right[0]:
            raise NotAWeightedSum("dividing by a grader is not a weighted sum")
        if right[1] == 0:
            raise NotAWeightedSum("division by zero")
        return _scaled(left, 1.0 / right[1])
    raise NotAWeightedSum(f"{type(node.op).__name__} is not part of a weighted sum (+ - * / only)")


def _scaled(linear: _Linear, factor: float) -> _Linear:
    weights, constant = linear
    return {name: _finite(weight * factor) for name, weight in weights.items()}, _finite(constant * factor)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise NotAWeightedSum("numbers must be finite")
    return value
