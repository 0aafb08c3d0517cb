"""Short specification strings, 'name:key=value,key=value', parsed against a dataclass's fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'vsml:ticks=1,hidden=32' -> ('vsml', {'ticks': '1', 'hidden': '32'})."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"option {item!r} in {spec!r} is not of the form key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def split_options(spec: str) -> tuple[list[str], dict[str, str]]:
    """'ordered:mnist:resize=14,per_class=20' -> (['ordered', 'mnist'], {'resize': '14', 'per_class': '20'}).

    Colon-separated names, then (in the last part, if it holds an '=') the options."""
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) > 1 and "=" in parts[-1]:
        names, options = parts[:-1], split_spec(":" + parts[-1])[1]
    else:
        names, options = parts, {}
    return [n for n in names if n], options


def _coerce(value: str, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is tuple:  # tuple[int, ...] written as 32x32 (or empty for none)
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(v, item_type, where) for v in filter(None, value.split("x")))
    if annotation is bool:
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    try:
        return annotation(value)
    except ValueError:
        raise ValueError(f"{where}: expected {annotation.__name__}, got {value!r}") from None


def build(cls: type, options: dict[str, str], what: str) -> Any:
    """Instantiate dataclass `cls` from string options; unknown keys raise an error listing the valid ones."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(f"{n}={f.default!r}" for n, f in fields.items()) or "(none)"
        raise ValueError(f"{what}: unknown option(s) {', '.join(unknown)}; valid options (defaults): {valid}")
    kwargs = {k: _coerce(v, hints[k], f"{what} option {k}") for k, v in options.items()}
    return cls(**kwargs)
