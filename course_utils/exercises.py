"""Automatic checks for the notebooks' exercises: a clear verdict, a hint, and no exception for 'not yet'."""

from __future__ import annotations

import math


def _plain(text: str) -> str:
    """A label as a learner may type it: a written "\\n" and a real line break are the same, and so are runs of
    spaces and line breaks (a table shows a label's line break as "\\n")."""
    return " ".join(text.replace("\\n", "\n").split())


def _matches(answer, expected, rel: float) -> bool:
    if isinstance(expected, (set, frozenset)):
        return any(_matches(answer, option, rel) for option in expected)   # no hashing: an answer may be a list
    if isinstance(expected, str) and isinstance(answer, str):
        return _plain(answer) == _plain(expected)
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return math.isclose(float(answer), float(expected), rel_tol=rel)
        except (TypeError, ValueError):
            return False
    return answer == expected


def check(name: str, answer, expected, *, rel: float = 0.01, hint: str = "",
          mistakes: list[tuple] = ()) -> bool:
    """Compare a learner's answer with the expected value. ``None`` means not answered yet (no failure). A set of
    expected values accepts any of them (e.g. settings that tie). ``rel=0`` asks for the exact number.
    ``mistakes`` lists classic wrong answers as (value, what went wrong): one of them gets its own explanation."""
    if answer is None:
        print(f"{name}: not answered yet. Replace None with your answer and run this cell again.")
        return False
    if _matches(answer, expected, rel):
        print(f"{name}: correct.")
        return True
    why = next((why for value, why in mistakes if _matches(answer, value, rel)), None)
    if why:
        print(f"{name}: {_brief_value(answer)} is not right yet: {why}")
    else:
        print(f"{name}: {_brief_value(answer)} is not right yet." + (f" Hint: {hint}" if hint else ""))
    return False


def _same(got, expected, rel: float) -> bool:
    """Equal, with a relative tolerance for numbers and tensors (nested lists and tuples compared item by item)."""
    import torch

    if isinstance(expected, torch.Tensor):
        return isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
            got.float(), expected.float(), rtol=rel, atol=1e-6)
    if isinstance(expected, float) or (isinstance(expected, int) and isinstance(got, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, expected, rel_tol=rel,
                                                                                             abs_tol=1e-9)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(_same(g, e, rel) for g, e in zip(got, expected, strict=True))
    return type(got) is type(expected) and got == expected


def first_difference(got, expected, rel: float, where: str = "") -> str:
    """Where ``got`` first differs from ``expected``, in a line: the position (an index into the tensor or list),
    the expected and the returned value; or the shape or type when those already differ."""
    import torch

    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return (f"{where or 'the result'}: expected a tensor of shape {tuple(expected.shape)}, "
                    f"got {_brief_value(got)}")
        if got.shape != expected.shape:
            return f"{where or 'the result'}: expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
        differs = ~torch.isclose(got.float(), expected.float(), rtol=rel, atol=1e-6)
        if not differs.any():
            return f"{where or 'the result'}: equal"
        index = tuple(int(i) for i in differs.nonzero()[0])
        position = f"{where}[{', '.join(map(str, index))}]: " if index else (f"{where}: " if where else "")
        return f"{position}expected {_number(expected[index].item())}, got {_number(got[index].item())}"
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(got) != len(expected):
            return f"{where or 'the result'}: expected {len(expected)} items, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            if not _same(g, e, rel):
                return first_difference(g, e, rel, f"{where}[{i}]")
    return f"{where + ': ' if where else ''}expected {_brief_value(expected)}, got {_brief_value(got)}"


def _number(value) -> str:
    """A number as a number: 0.207, not np.float64(0.2068...)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 0) == 0:
        value = value.item()                          # numpy and torch scalars
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def _brief_value(value, width: int = 60) -> str:
    """A value in a few words: tensors by shape and their first numbers, long texts cut."""
    import torch

    if isinstance(value, torch.Tensor):
        flat = value.flatten()[:4].tolist()
        more = ", ..." if value.numel() > 4 else ""
        return f"tensor{tuple(value.shape)} [{', '.join(_number(v) for v in flat)}{more}]"
    if isinstance(value, float) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
        return _number(value)
    text = repr(value)
    if len(text) <= width:
        return text
    return text[:width - 5] + " ...'" if isinstance(value, str) else text[:width] + " ..."


def excerpt(args: tuple) -> str:
    """A case's arguments, each in a few words (a 40-number tensor would fill the screen)."""
    return "(" + ", ".join(_brief_value(a) for a in args) + ")"


def _matches_mistake(got, args, mistakes, rel: float) -> str | None:
    """What went wrong, when the learner's result equals a classic mistake's result on this case."""
    for wrong, why in mistakes:
        try:
            if _same(got, wrong(*args), rel):
                return why
        except Exception:   # a mistake that does not apply to this input
            continue
    return None


def check_function(name: str, function, reference, cases: list[tuple], *, rel: float = 1e-4, hint: str = "",
                   mistakes: list[tuple] = (), preview=excerpt) -> bool:
    """Run a learner's ``function`` and the course's tested ``reference`` on every case (a tuple of arguments) and
    compare. A stub that raises ``NotImplementedError`` means not written yet (no failure). On the first case that
    differs it shows the input (in brief), the first element that differs (position, expected, got), and, when the
    result is one of the classic ``mistakes`` (pairs of a wrong function and what it gets wrong), names the
    mistake; otherwise the hint. ``preview`` shows a case's input (by default each argument in brief; an
    exercise can show the fields it is about instead)."""
    for number, args in enumerate(cases, 1):
        try:
            got = function(*args)
        except NotImplementedError:
            print(f"{name}: not written yet. Fill in the function and run this cell again.")
            return False
        except Exception as error:   # the learner's code: report it, do not stop the notebook
            print(f"{name}: case {number} of {len(cases)} raised {type(error).__name__}: {error}\n"
                  f"  input: {preview(args)}")
            return False
        expected = reference(*args)
        if not _same(got, expected, rel):
            mistake = _matches_mistake(got, args, mistakes, rel)
            advice = f"\n  Looks like a classic mistake: {mistake}" if mistake else ""
            advice = advice or (f"\n  Hint: {hint}" if hint else "")
            print(f"{name}: case {number} of {len(cases)} is not right yet.\n  input: {preview(args)}\n"
                  f"  first difference: {first_difference(got, expected, rel)}{advice}")
            return False
    print(f"{name}: correct on all {len(cases)} cases.")
    return True


def _accepts(inputs_model, payload: dict) -> tuple[bool, str]:
    """Whether a pydantic model of an endpoint's inputs accepts a JSON body, and pydantic's first message if not."""
    import pydantic

    try:
        inputs_model.model_validate(payload)
        return True, "accepted"
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        return False, f"refused: {'.'.join(map(str, first['loc']))}: {first['msg']}"


def inputs_model(function):
    """The pydantic model of a function's typed inputs (``self`` left out), as BentoML builds one for an API."""
    import inspect
    import typing

    import pydantic

    hints = typing.get_type_hints(function, include_extras=True)
    fields = {name: (hints.get(name, typing.Any), ... if p.default is inspect.Parameter.empty else p.default)
              for name, p in inspect.signature(function).parameters.items() if name != "self"}
    return pydantic.create_model(f"{function.__name__}_inputs", **fields)


def _brief(payload: dict) -> str:
    """A body as text, long strings shortened to their length (a 4,000-character question would fill the screen)."""
    return "{" + ", ".join(f"{k!r}: " + (f"<a string of {len(v)} characters>" if isinstance(v, str) and len(v) > 40
                                        else repr(v)) for k, v in payload.items()) + "}"


def check_endpoint(name: str, function, reference_model, payloads: list[dict], *, hint: str = "") -> bool:
    """Build the inputs model of a learner's endpoint from its type annotations and compare, body by body, what it
    accepts and refuses with ``reference_model`` (e.g. the pydantic model BentoML validates the course's
    ``/solve`` with). A function without any ``Annotated`` constraint is reported as not written yet."""
    import typing

    hints = typing.get_type_hints(function, include_extras=True)
    if not any(typing.get_origin(t) is typing.Annotated for t in hints.values()):
        print(f"{name}: not written yet. Add the Annotated[...] constraints and run this cell again.")
        return False
    try:
        mine = inputs_model(function)
    except Exception as error:   # the learner's annotations: report them, do not stop the notebook
        print(f"{name}: pydantic cannot build a model from these annotations: {type(error).__name__}: {error}")
        return False
    for number, payload in enumerate(payloads, 1):
        (expected_ok, expected), (got_ok, got) = _accepts(reference_model, payload), _accepts(mine, payload)
        if expected_ok != got_ok:
            print(f"{name}: body {number} of {len(payloads)} is not handled right yet.\n  body:     {_brief(payload)}\n"
                  f"  expected: {expected}\n  yours:    {got}" + (f"\n  Hint: {hint}" if hint else ""))
            return False
    print(f"{name}: correct on all {len(payloads)} bodies.")
    return True
