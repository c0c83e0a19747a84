"""Settings from YAML: safe-loaded, checked key by key, errors as file:line:col.

The defaults below are the ones `configs/default.yaml` documents; a test keeps
the two equal.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import yaml

DEFAULT_CONFIG_NAME = "nandoctor.yaml"


class ConfigError(Exception):
    """A config that cannot be used; the message starts with file:line:col."""


@dataclass
class WatchSettings:
    stats_every: int = 10
    steps_after_nonfinite: int = 10
    steps_after_runaway: int = 100
    runaway_factor: float = 1000.0
    runaway_patience: int = 10


@dataclass
class ReplaySettings:
    enabled: bool = True
    previous_step: bool = False


@dataclass
class ProbeSettings:
    enabled: bool = True
    lr_factors: list[float] = field(default_factory=lambda: [0.1])
    clip_norm: float = 1.0
    precision: bool = True
    guard: bool = True
    data: bool = True
    stable_lr: bool = True
    horizon_factor: float = 1.25
    min_horizon: int = 30
    jobs: Optional[int] = None


@dataclass
class SweepSettings:
    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100
    divergence_factor: float = 4.0
    repeats: int = 1


@dataclass
class CiSettings:
    fail_on: str = "error"
    max_annotations: int = 10
    baseline: Optional[str] = None
    baseline_margin: float = 0.1


@dataclass
class Settings:
    script: Optional[str] = None
    args: list[str] = field(default_factory=list)
    seed: Optional[int] = 0
    threads: Optional[int] = None
    timeout: float = 900.0
    max_steps: Optional[int] = None
    watch: WatchSettings = field(default_factory=WatchSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    ci: CiSettings = field(default_factory=CiSettings)


_POSITIVE = {
    "timeout", "max_steps", "threads", "stats_every", "runaway_factor",
    "runaway_patience", "clip_norm", "horizon_factor", "min_horizon", "jobs",
    "start_lr", "end_lr", "steps", "divergence_factor", "repeats",
    "max_annotations",
}
_NON_NEGATIVE = {"steps_after_nonfinite", "steps_after_runaway", "baseline_margin"}
_CHOICES = {"fail_on": ("error", "warning", "info")}
# Plain data only: any other tag (!!python/object, !custom) is refused before
# anything is constructed, so a config can never build an object.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in (
    "str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_NULL_TAG = "tag:yaml.org,2002:null"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a number (YAML 1.1 wants a dot: 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$"),
    list("-+0123456789."),
)


def load_settings(path: Optional[Path]) -> tuple[Settings, Optional[Path]]:
    """Settings from `path`, or from ./nandoctor.yaml when present, or defaults."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_NAME)
        if not candidate.is_file():
            return Settings(), None
        path = candidate
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file. Pass the "
                          "YAML file itself, e.g. --config nandoctor.yaml.")
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found. Check the path, or run without "
            "--config to use the defaults (configs/default.yaml lists every key)."
        )
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", exc)
        raise ConfigError(f"{_where(path, _error_mark(exc, text))}not valid "
                          f"YAML: {problem}. configs/default.yaml shows the "
                          "format.") from None
    except RecursionError:  # thousands of nested brackets
        raise ConfigError(f"{path}: nested too deeply to be a nandoctor "
                          "config; configs/default.yaml shows the format.") from None
    if node is None:
        return Settings(), path
    _refuse_tags(node, path, [], set())
    settings = Settings()
    _fill(settings, node, path, "")
    return settings, path


def _where(path: Path, mark: Any) -> str:
    if mark is None:
        return f"{path}: "
    return f"{path}:{mark.line + 1}:{mark.column + 1}: "


def _error_mark(exc: yaml.YAMLError, text: str) -> Any:
    mark = getattr(exc, "problem_mark", None)
    if mark is None and isinstance(exc, yaml.reader.ReaderError):
        # Characters YAML refuses (a binary file) come with an offset only.
        start = text.rfind("\n", 0, exc.position) + 1
        mark = yaml.Mark(exc.name, exc.position, text.count("\n", 0, exc.position),
                         exc.position - start, None, None)
    return mark


def _refuse_tags(node: yaml.Node, path: Path, inside: list[yaml.Node],
                 seen: set[int]) -> None:
    """Walks the composed nodes once; aliases share nodes, so `seen` keeps
    this linear and `inside` catches an alias to an enclosing node."""
    where = _where(path, node.start_mark)
    if any(node is outer for outer in inside):
        raise ConfigError(f"{where}this value refers to itself (a recursive "
                          "alias); write the value out.")
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConfigError(f"{where}the tag {tag} is not allowed: nandoctor reads "
                          "plain numbers, strings, lists and mappings and never "
                          "builds objects from a config. Remove the tag.")
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        return
    for child in children:
        _refuse_tags(child, path, [*inside, node], seen)


def _fill(target: Any, node: yaml.Node, path: Path, prefix: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        section = prefix.rstrip(".") or "the config"
        raise ConfigError(f"{_where(path, node.start_mark)}{section} must be a "
                          "mapping of `key: value` lines; configs/default.yaml "
                          "shows them.")
    hints = get_type_hints(type(target))
    names = [f.name for f in fields(target)]
    seen: set[str] = set()
    for key_node, value_node in node.value:
        where = _where(path, key_node.start_mark)
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{where}a key must be a plain name, such as "
                              "`timeout`.")
        key = str(key_node.value)
        dotted = f"{prefix}{key}"
        if key in seen:
            raise ConfigError(f"{where}duplicate key '{dotted}'; keep one of them.")
        seen.add(key)
        if key not in names:
            raise ConfigError(f"{where}unknown key '{dotted}'."
                              f"{_suggest(key, target, prefix)} "
                              "configs/default.yaml lists every key.")
        current = getattr(target, key)
        if is_dataclass(current):
            _fill(current, value_node, path, f"{dotted}.")
            continue
        value_where = _where(path, value_node.start_mark)
        value = _plain(value_node, hints[key], dotted, value_where)
        setattr(target, key, _checked(value, hints[key], dotted, value_where))


def _suggest(key: str, target: Any, prefix: str) -> str:
    """` Did you mean ...?`: a close key here, or this key one level down."""
    names = [f.name for f in fields(target)]
    below = [f"{name}.{key}" for name in names
             if is_dataclass(getattr(target, name))
             and key in {f.name for f in fields(getattr(target, name))}]
    guess = below or difflib.get_close_matches(key, names, n=1)
    return f" Did you mean '{prefix}{guess[0]}'?" if guess else ""


def _plain(node: yaml.Node, hint: Any, dotted: str, where: str) -> Any:
    """The node's data. Text fields (str, list[str]) keep their scalars as
    written, so that `args: [--lr, 1e-3]` hands the script '1e-3', not 0.001."""
    if str in (hint, *get_args(hint)):
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL_TAG:
            return node.value
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items and all(isinstance(n, yaml.ScalarNode) for n in items):
            return [n.value for n in items]
    try:
        return yaml.load(yaml.serialize(node), Loader=_Loader)
    except (yaml.YAMLError, ValueError) as exc:  # a date such as 2020-13-45
        raise ConfigError(f"{where}{dotted} cannot be read: {exc}.") from None


def _checked(value: Any, hint: Any, dotted: str, where: str) -> Any:
    key = dotted.rpartition(".")[2]
    optional = get_origin(hint) is Union and type(None) in get_args(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}{dotted} must not be empty.")
    base = next(a for a in get_args(hint) if a is not type(None)) if optional else hint
    converted = _convert(value, base)
    if converted is None:
        raise ConfigError(f"{where}{dotted} must be {_describe(base)}, "
                          f"got {value!r}.")
    numbers = converted if isinstance(converted, list) else [converted]
    for number in numbers:
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            if not math.isfinite(number):
                raise ConfigError(f"{where}{dotted} must be a finite number, "
                                  f"got {number}.")
            if key in _POSITIVE and number <= 0:
                raise ConfigError(f"{where}{dotted} must be greater than 0, "
                                  f"got {number:g}.")
            if key in _NON_NEGATIVE and number < 0:
                raise ConfigError(f"{where}{dotted} must not be negative, "
                                  f"got {number:g}.")
    if key in _CHOICES and converted not in _CHOICES[key]:
        raise ConfigError(f"{where}{dotted} must be one of "
                          f"{', '.join(_CHOICES[key])}, got {value!r}.")
    return converted


def _convert(value: Any, base: Any) -> Any:
    if get_origin(base) is list:
        (item,) = get_args(base)
        if not isinstance(value, list):
            return None
        items = [_convert(v, item) for v in value]
        return None if any(i is None for i in items) else items
    if base is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if base is int:
        return value if isinstance(value, int) else None
    if base is float:
        return float(value) if isinstance(value, (int, float)) else None
    if base is str:
        return str(value) if isinstance(value, (str, int, float)) else None
    return None


_KINDS = {bool: ("true or false", "true/false values"),
          int: ("a whole number", "whole numbers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def _describe(base: Any) -> str:
    if get_origin(base) is list:
        return f"a list of {_KINDS[get_args(base)[0]][1]}"
    return _KINDS[base][0]
