"""A batch file's text: its format, its parsing, and where each key was written.

TOML, JSON and YAML are parsed into plain data, together with a map from every key path to its
line, so that :class:`BatchFileError` can point at the line of each :class:`Problem`.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

log = logging.getLogger(__name__)

# =========================================================================== errors


@dataclass(frozen=True)
class Problem:
    path: str             # key path, e.g. "jobs[2].options.face_limit" ("" for the whole file)
    message: str
    line: Optional[int] = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class BatchFileError(ValueError):
    """The batch file cannot be run; ``problems`` says where and why (nothing was sent)."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''} in the batch file"
        return head + "".join(f"\n  {p}" for p in self.problems)


# =========================================================================== key -> line maps


class _LineIndex:
    def __init__(self, text: str):
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _TomlScanner:
    """Finds the line of every key and array element of a TOML document.

    Not a TOML parser (tomllib parses); it only follows the structure far enough to say where
    a key path such as ("jobs", 2, "post", "lowpoly") was written, including inline tables and
    arrays that span lines. Text it does not understand is skipped.
    """

    def __init__(self, text: str):
        self.text = text
        self.index = _LineIndex(text)
        self.lines: dict[tuple, int] = {}
        self.aot_counts: dict[tuple, int] = {}  # array-of-tables path -> elements seen

    def scan(self) -> dict[tuple, int]:
        text, i, n = self.text, 0, len(self.text)
        table: tuple = ()
        while i < n:
            i = self._skip_ws(i, newlines=True)
            if i >= n:
                break
            c = text[i]
            if c == "#":
                i = self._line_end(i)
            elif text.startswith("[[", i):
                end = text.find("]]", i)
                if end < 0:
                    break
                keys = self._split_keys(text[i + 2:end])
                parent = self._resolve(keys[:-1])
                path = parent + (keys[-1],)
                count = self.aot_counts.get(path, 0)
                self.aot_counts[path] = count + 1
                self.lines.setdefault(path, self.index.line(i))
                table = path + (count,)
                self.lines[table] = self.index.line(i)
                i = self._line_end(end)
            elif c == "[":
                end = text.find("]", i)
                if end < 0:
                    break
                table = self._resolve(self._split_keys(text[i + 1:end]))
                self.lines.setdefault(table, self.index.line(i))
                i = self._line_end(end)
            else:
                i = self._key_value(i, table)
        return self.lines

    # -- helpers --------------------------------------------------------------------------
    def _resolve(self, keys: list[str]) -> tuple:
        path: tuple = ()
        for key in keys:
            path += (key,)
            if path in self.aot_counts:
                path += (self.aot_counts[path] - 1,)
        return path

    @staticmethod
    def _split_keys(raw: str) -> list[str]:
        keys, i = [], 0
        raw = raw.strip()
        while i < len(raw):
            c = raw[i]
            if c in "\"'":
                end = raw.find(c, i + 1)
                end = len(raw) if end < 0 else end
                keys.append(raw[i + 1:end])
                i = end + 1
            elif c in ". \t":
                i += 1
            else:
                m = _BARE_KEY.match(raw, i)
                if not m:
                    i += 1
                    continue
                keys.append(m.group(0))
                i = m.end()
        return keys or [raw]

    def _skip_ws(self, i: int, newlines: bool) -> int:
        text, n = self.text, len(self.text)
        while i < n and (text[i] in " \t\r" or (newlines and text[i] == "\n")):
            i += 1
        return i

    def _line_end(self, i: int) -> int:
        end = self.text.find("\n", i)
        return len(self.text) if end < 0 else end + 1

    def _read_key(self, i: int) -> tuple[list[str], int]:
        """A (possibly dotted) key up to its '='; returns the keys and the index after '='."""
        end = i
        text = self.text
        while end < len(text) and text[end] not in "=\n":
            if text[end] in "\"'":
                close = text.find(text[end], end + 1)
                end = len(text) if close < 0 else close + 1
            else:
                end += 1
        if end >= len(text) or text[end] != "=":
            return [], self._line_end(i)
        return self._split_keys(text[i:end]), end + 1

    def _key_value(self, i: int, table: tuple) -> int:
        keys, j = self._read_key(i)
        if not keys:
            return j
        path = table + tuple(keys)
        self.lines.setdefault(path, self.index.line(i))
        return self._value(j, path)

    def _string_end(self, i: int) -> int:
        text = self.text
        quote = text[i]
        if text.startswith(quote * 3, i):
            end = text.find(quote * 3, i + 3)
            return len(text) if end < 0 else end + 3
        j = i + 1
        while j < len(text) and text[j] != "\n":
            if quote == '"' and text[j] == "\\":
                j += 2
                continue
            if text[j] == quote:
                return j + 1
            j += 1
        return j

    def _value(self, i: int, path: tuple) -> int:
        text, n = self.text, len(self.text)
        i = self._skip_ws(i, newlines=False)
        if i >= n:
            return i
        c = text[i]
        if c in "\"'":
            return self._string_end(i)
        if c == "[":
            return self._array(i + 1, path)
        if c == "{":
            return self._inline_table(i + 1, path)
        while i < n and text[i] not in ",]}\n#":
            i += 1
        return i

    def _skip_blank(self, i: int) -> int:
        text, n = self.text, len(self.text)
        while i < n:
            i = self._skip_ws(i, newlines=True)
            if i < n and text[i] == "#":
                i = self._line_end(i)
                continue
            return i
        return i

    def _array(self, i: int, path: tuple) -> int:
        text, n = self.text, len(self.text)
        index = 0
        while True:
            i = self._skip_blank(i)
            if i >= n:
                return i
            if text[i] == "]":
                return i + 1
            if text[i] == ",":
                i += 1
                continue
            element = path + (index,)
            self.lines.setdefault(element, self.index.line(i))
            before = i
            i = self._value(i, element)
            if i == before:
                i += 1
            index += 1

    def _inline_table(self, i: int, path: tuple) -> int:
        text, n = self.text, len(self.text)
        while True:
            i = self._skip_blank(i)
            if i >= n:
                return i
            if text[i] == "}":
                return i + 1
            if text[i] == ",":
                i += 1
                continue
            keys, j = self._read_key(i)
            if not keys:
                return j
            key_path = path + tuple(keys)
            self.lines.setdefault(key_path, self.index.line(i))
            i = self._value(j, key_path)


def toml_key_lines(text: str) -> dict[tuple, int]:
    try:
        return _TomlScanner(text).scan()
    except Exception:  # noqa: BLE001 - line numbers are a courtesy; never hide the real error
        log.debug("could not map TOML keys to lines", exc_info=True)
        return {}


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def json_key_lines(text: str) -> dict[tuple, int]:
    """The line of every key and array element of a JSON document."""
    from json.decoder import scanstring

    index = _LineIndex(text)
    lines: dict[tuple, int] = {}
    n = len(text)

    def ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def value(i: int, path: tuple) -> int:
        i = ws(i)
        lines.setdefault(path, index.line(i))
        c = text[i]
        if c == "{":
            i = ws(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                i = ws(i)
                key, end = scanstring(text, i + 1)
                lines.setdefault(path + (key,), index.line(i))
                i = ws(end)
                i = value(i + 1, path + (key,))  # skip ':'
                i = ws(i)
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1
        if c == "[":
            i = ws(i + 1)
            if text[i] == "]":
                return i + 1
            k = 0
            while True:
                i = value(i, path + (k,))
                k += 1
                i = ws(i)
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1
        if c == '"':
            return scanstring(text, i + 1)[1]
        m = _JSON_NUMBER.match(text, i)
        if m:
            return m.end()
        for literal in ("true", "false", "null"):
            if text.startswith(literal, i):
                return i + len(literal)
        raise ValueError(f"unexpected {c!r}")

    try:
        value(0, ())
    except Exception:  # noqa: BLE001 - partial map is fine
        pass
    lines.pop((), None)
    return lines


def yaml_key_lines(text: str) -> dict[tuple, int]:
    try:
        import yaml
    except ImportError:
        return {}
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = getattr(key_node, "value", None)
                lines.setdefault(path + (key,), key_node.start_mark.line + 1)
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for k, item in enumerate(node.value):
                lines.setdefault(path + (k,), item.start_mark.line + 1)
                walk(item, path + (k,))

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except Exception:  # noqa: BLE001
        return {}
    return lines


def line_of(lines: dict[tuple, int], path: tuple) -> Optional[int]:
    """The line of ``path`` or of its closest enclosing key that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


# =========================================================================== parsing


def detect_format(path: Union[str, os.PathLike]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise BatchFileError(str(path), [Problem("", f"unknown batch file type '{suffix or '(none)'}': "
                                                 "use .toml, .json, .yaml or .yml")])


def parse_text(text: str, fmt: str, source: str = "<batch>") -> tuple[Any, dict[tuple, int]]:
    """The raw data of a batch file and where each key was written; BatchFileError on syntax."""
    if fmt == "toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            m = re.search(r"\(at line (\d+), column \d+\)", message)
            line = int(m.group(1)) if m else None
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
            raise BatchFileError(source, [Problem("", f"not valid TOML: {message}", line)]) from None
        return data, toml_key_lines(text)
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BatchFileError(source, [Problem("", f"not valid JSON: {exc.msg}", exc.lineno)]) from None
        return data, json_key_lines(text)
    if fmt == "yaml":
        try:
            import yaml
        except ImportError:
            raise BatchFileError(source, [Problem("", "YAML batch files need PyYAML, which this "
                                                      "Python does not have; use TOML or JSON.")]) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise BatchFileError(source, [Problem("", f"not valid YAML: {problem}",
                                                  mark.line + 1 if mark else None)]) from None
        return data, yaml_key_lines(text)
    raise BatchFileError(source, [Problem("", f"unknown batch file format {fmt!r}")])
