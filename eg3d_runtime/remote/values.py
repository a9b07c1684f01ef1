"""Frozen dataclasses (the viewer's RenderArgs, a frame's NetworkInfo) to JSON and back, read
from their fields' annotations: a field added to RenderArgs travels with no protocol change.
Values are checked against the annotation (bool, int, float, str, tuple, `X | None`); anything
else is refused with one line naming the field."""
import dataclasses
import math
import types
import typing

from .protocol import ProtocolError

_SCALARS = (bool, int, float, str)


def to_json(value):
    """A frozen dataclass -> a JSON-ready dict of its compared fields (tuples become lists)."""
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, 'items'):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, _SCALARS):
        return value
    return str(value)


def from_json(cls, data, what='args'):
    """The dataclass `cls` from a JSON object; missing fields take their defaults, unknown fields
    and wrong types raise ProtocolError."""
    if not isinstance(data, dict):
        raise ProtocolError(f'{what} must be an object')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.compare and f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(f'{what}: unknown field {unknown[0]!r} (this server knows '
                            f'{len(known)} fields; is it older than the viewer?)')
    return cls(**{name: _check(hints[name], value, f'{what}.{name}')
                  for name, value in data.items()})


def _check(annotation, value, where):
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ProtocolError(f'{where} must not be null')
    for option in options:
        if option is type(None):
            continue
        converted = _convert(option, value)
        if converted is not _NO:
            return converted
    names = ' or '.join(getattr(o, '__name__', str(o)) for o in options)
    raise ProtocolError(f'{where} must be {names}, not {type(value).__name__}')


_NO = object()


def _is_union(annotation):
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _convert(kind, value):
    origin = typing.get_origin(kind) or kind
    if origin is tuple:
        if not isinstance(value, list) or not all(
                v is None or isinstance(v, _SCALARS) for v in value):
            return _NO
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return _NO
        return tuple(value)
    if kind is bool:
        return value if isinstance(value, bool) else _NO
    if isinstance(value, bool):
        return _NO
    if kind is int:
        return value if isinstance(value, int) else _NO
    if kind is float:
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return _NO
    if kind is str:
        return value if isinstance(value, str) else _NO
    return _NO
