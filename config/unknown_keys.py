"""Refusing settings that name nothing: a typo in the TOML file or an `I2VMON_*` variable would otherwise be
ignored without a word (`speed_mod = "off"` leaves speed mode on; a `[colector]` section changes nothing).

The check walks the settings models themselves, so a section or field added anywhere in config/settings.py is
known here without being listed, and each unknown name comes with the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel


@dataclass(frozen=True)
class UnknownKey:
    where: str  # "engine.speed_mod", "[colector]", "I2VMON_ENGINE__SPEED_MOD"
    suggestion: str | None  # the nearest valid name at that level, if one is close

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"unknown setting {self.where}{hint}"


class UnknownSettingError(ValueError):
    """Settings name a key that no section or field has. A ValueError, so callers that report bad
    settings already report this one too."""

    def __init__(self, unknown: list[UnknownKey], source: str) -> None:
        self.unknown = unknown
        lines = [f"{u.message()}" for u in unknown]
        super().__init__(f"{source}: " + "; ".join(lines))


def _names(model: type[BaseModel]) -> dict[str, str]:
    """Every name a key may take at this level (field names and aliases) → the field name."""
    names: dict[str, str] = {}
    for name, field in model.model_fields.items():
        names[name] = name
        if field.alias:
            names[field.alias] = name
    return names


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings model a field holds directly or through `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _item_model(annotation: object) -> type[BaseModel] | None:
    """The model of a `list[Model]` field's items."""
    if typing.get_origin(annotation) in (list, tuple):
        args = typing.get_args(annotation)
        return _model_in(args[0]) if args else None
    return None


def nearest(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_keys(model: type[BaseModel], data: Mapping[str, object], path: tuple[str, ...] = ()) -> list[UnknownKey]:
    """The keys of `data` (nested dicts as read from TOML) that `model` has no field for, depth first."""
    found: list[UnknownKey] = []
    names = _names(model)
    for key, value in data.items():
        field_name = names.get(key)
        if field_name is None:
            where = f"[{key}]" if not path and isinstance(value, Mapping) else ".".join((*path, key))
            found.append(UnknownKey(where, nearest(key, model.model_fields)))
            continue
        annotation = model.model_fields[field_name].annotation
        section = _model_in(annotation)
        if section is not None and isinstance(value, Mapping):
            found += unknown_keys(section, value, (*path, field_name))
        item = _item_model(annotation)
        if item is not None and isinstance(value, list):
            for i, entry in enumerate(value):
                if isinstance(entry, Mapping):
                    found += unknown_keys(item, entry, (*path, field_name, str(i)))
    return found


def check_toml(model: type[BaseModel], toml_path: Path | None) -> None:
    """Raise UnknownSettingError naming every unknown key of the settings file. A file that does not parse is
    left to the settings loader, which reports it."""
    if toml_path is None or not toml_path.is_file():
        return
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    unknown = unknown_keys(model, data)
    if unknown:
        raise UnknownSettingError(unknown, f"settings file {toml_path}")


def _value(text: str) -> object:
    """A variable's value as the settings loader reads it: JSON for a section or a list (`I2VMON_ENGINE='{…}'`),
    so the keys inside are checked too; anything else as it is."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def check_environment(model: type[BaseModel], prefix: str, delimiter: str, *, environ: Mapping[str, str] | None = None,
                      not_settings: Iterable[str] = ()) -> None:
    """Raise UnknownSettingError naming each `PREFIX…` variable that sets nothing.

    A variable with the nested delimiter (`I2VMON_ENGINE__SPEED_MOD`) can only be meant as a setting, so each is
    checked. A plain one (`I2VMON_FAILPOINTS`, test switches) may belong to another part of i2vmon, so it is
    refused only when it is a near miss of a top-level setting (`I2VMON_DATA_DIRR`)."""
    environ = os.environ if environ is None else environ
    skip = {name.upper() for name in not_settings}
    unknown: list[UnknownKey] = []
    for var in sorted(environ):
        if not var.upper().startswith(prefix.upper()) or var.upper() in skip:
            continue
        parts = var[len(prefix):].lower().split(delimiter)
        if len(parts) == 1 and parts[0] not in _names(model):
            close = nearest(parts[0], model.model_fields, cutoff=0.8)
            if close is not None:
                unknown.append(UnknownKey(var, (prefix + close).upper()))
            continue
        nested: dict[str, object] = {}
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[parts[-1]] = _value(environ[var])
        for miss in unknown_keys(model, nested):
            suggestion = None
            if miss.suggestion is not None:
                level = miss.where.strip("[]").split(".")[:-1]
                suggestion = (prefix + delimiter.join([*level, miss.suggestion])).upper()
            unknown.append(UnknownKey(var, suggestion))
    if unknown:
        raise UnknownSettingError(unknown, "environment")
