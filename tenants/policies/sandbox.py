"""Jinja2's sandbox with a bounded cost: what a tenant's template may compute, and for how long.

``SandboxedEnvironment`` keeps a template away from Python internals; it does nothing about cost.
``{{ (((9**99)**99)**99)**99 % 7 }}`` is one expression that runs for minutes inside C, where no timer,
no signal and no thread can stop it (a thread cannot be killed). So the first rule is that no single step
of a render may be expensive, checked from the operands' sizes *before* the step runs:

- every binary operator is intercepted (``call_binop``): integer results stay under ``INT_BITS_MAX``
  bits (``**``, ``*``, ``+``, ``-``: refused from the operands' bit lengths, before Python computes),
  text and lists built with ``*`` and ``+`` stay under ``VALUE_MAX`` characters, and ``%`` formatting of
  text is refused (``'%.999999999d' % 1`` is a gigabyte). Jinja has no ``<<`` and no ``**=``, and
  function calls (``range()`` and the like) are refused before a template is saved, with the globals
  removed besides;
- ``~`` (concatenation) checks the size of its parts before joining them;
- every filter checks the size of what it is given and of what it returns (``join`` also counts its
  separator once per item, ``round`` refuses a precision that would make it compute ``10**precision``);
- every ``{{ output }}`` is counted against ``OUTPUT_MAX`` before it is turned into text, also inside
  ``{% set %}...{% endset %}`` and ``{% filter %}`` blocks, whose text never reaches the output stream.

Sizes are "weights": roughly the characters a value would print as, measured only up to the limit, so
a list holding a thousand references to one long string costs no more to measure than the limit.

The second rule bounds the number of steps: loops are counted (``ITERATIONS_MAX`` iterations per render,
over all loops), and every checkpoint above (each operator, concatenation, filter, output and loop
iteration) also looks at the clock, so a render stops after ``RENDER_SECONDS``. Between two checkpoints a
template can only do bounded work, so the time cap is honest: it holds to within one small step. The
budget lives in a context variable set by :func:`bounded_render`, so renders on several threads or tasks
do not share it. A refused render raises :class:`jinja2.exceptions.SecurityError`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

VALUE_MAX = 10_000  # characters of a string or list a template builds with operators (`*`, `+`, `~`)
OUTPUT_MAX = 100_000  # characters a render may print (and the most a filter may take or return)
INT_BITS_MAX = 256  # bits of an integer an operator may produce: amounts in cents need 64
ITERATIONS_MAX = 1_000  # loop iterations per render, over all loops
RENDER_SECONDS = 0.5  # wall-clock time of one render; a real message renders in well under a millisecond
ROUND_DIGITS_MAX = 15  # a float has no more; `round(x, 10**9, 'ceil')` would compute 10**(10**9)


@dataclass
class _Budget:
    deadline: float
    iterations: int = 0
    printed: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def bounded_render(seconds: float | None = None) -> Iterator[None]:
    """Give the renders inside one budget of time, loop iterations and printed text.

    Nested uses share the outer budget (a title and a body are one message).
    """
    if _BUDGET.get() is not None:
        yield
        return
    token = _BUDGET.set(_Budget(deadline=time.monotonic() + (RENDER_SECONDS if seconds is None else seconds)))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _checkpoint() -> _Budget | None:
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise SecurityError(f"the template takes longer than {RENDER_SECONDS:g} s to render")
    return budget


def weight(value: Any, limit: int) -> int:
    """Roughly how many characters ``value`` prints as; stops counting once past ``limit``."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1  # about the decimal digits
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item) + 1
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Mapping):
            total += len(item) + 1
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        else:  # dates, floats, undefined values: a few characters
            total += 1
        if total > limit:
            return total
    return total


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arithmetic(op: str, left: Any, right: Any) -> None:
    if op == "%" and isinstance(left, str):
        raise SecurityError("formatting text with % is not allowed in message templates; use the filters")
    if _is_int(left) and _is_int(right):
        a, b = left.bit_length(), right.bit_length()
        if op == "**":
            # A negative exponent gives a float; 0, 1 and -1 stay small whatever the exponent.
            bits = right * math.log2(abs(left)) + 1 if right > 0 and a > 1 else 0
        elif op == "*":
            bits = a + b
        elif op in ("+", "-"):
            bits = max(a, b) + 1
        else:  # /, //, %: never larger than the operands
            bits = 0
        if bits > INT_BITS_MAX:
            what = "exponent too large" if op == "**" else "number too large"
            raise SecurityError(f"{what}: {op} would make an integer of more than {INT_BITS_MAX} bits")
        return
    size = 0
    if op == "*":
        sequence, times = (left, right) if _is_int(right) else (right, left)
        if isinstance(sequence, (str, list, tuple)) and _is_int(times) and times > 0:
            size = weight(sequence, VALUE_MAX) * times
    elif op == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        size = weight(left, VALUE_MAX) + weight(right, VALUE_MAX)
    if size > VALUE_MAX:
        raise SecurityError(f"result too large: more than {VALUE_MAX} characters")


def _concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: the sizes of the parts are checked before any is turned into text."""
    _checkpoint()
    if sum(weight(part, VALUE_MAX) for part in parts) > VALUE_MAX:
        raise SecurityError(f"result too large: more than {VALUE_MAX} characters")
    return "".join(str(part) for part in parts)


def _iterate(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every ``{% for %}`` loops over: counts the iterations and checks the clock at each."""
    budget = _checkpoint()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > ITERATIONS_MAX:
                raise SecurityError(f"loops may run at most {ITERATIONS_MAX} times in one message")
        _checkpoint()
        yield item


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing inputs and results over ``OUTPUT_MAX``; keeps Jinja's pass_context & co."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # copies jinja_pass_arg with the rest of __dict__
    def checked(*args: Any, **kwargs: Any) -> Any:
        _checkpoint()
        given = (*args[skip:], *kwargs.values())
        size = weight(given, OUTPUT_MAX)
        if name == "join" and len(given) > 1 and isinstance(given[0], (list, tuple, str)):
            size += len(given[0]) * weight(given[1], OUTPUT_MAX)
        if size > OUTPUT_MAX:
            raise SecurityError(f"the {name} filter was given more than {OUTPUT_MAX} characters")
        if name == "round":
            precision = kwargs.get("precision", given[1] if len(given) > 1 else 0)
            if _is_int(precision) and abs(precision) > ROUND_DIGITS_MAX:
                raise SecurityError(f"round to at most {ROUND_DIGITS_MAX} digits")
        result = func(*args, **kwargs)
        if weight(result, OUTPUT_MAX) > OUTPUT_MAX:
            raise SecurityError(f"the {name} filter made more than {OUTPUT_MAX} characters")
        return result

    return checked


def count_output(value: Any) -> None:
    """Called on every ``{{ value }}`` before it becomes text (the environment's finalize)."""
    budget = _checkpoint()
    printed = weight(value, OUTPUT_MAX)
    if budget is not None:
        budget.printed += printed
        printed = budget.printed
    if printed > OUTPUT_MAX:
        raise SecurityError("the rendered text is too long")


class _BoundedCodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Every loop iterates through `_iterate`. The tree is parsed afresh for each compile.
        node.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None,
                               lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(SandboxedEnvironment):
    """A sandbox whose renders have a bounded cost (see the module's docstring)."""

    code_generator_class = _BoundedCodeGenerator
    # Intercepting also stops the compiler from constant-folding `'a' * 10**9` or `9**99**99` at parse time.
    intercepted_binops = frozenset(SandboxedEnvironment.default_binop_table)  # all seven: + - * / // % **

    @staticmethod
    def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        return _iterate(iterable)

    @staticmethod
    def bounded_concat(parts: tuple[Any, ...]) -> str:
        return _concat(parts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _checkpoint()
        _check_arithmetic(operator, left, right)
        return super().call_binop(context, operator, left, right)
