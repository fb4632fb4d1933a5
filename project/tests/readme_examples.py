"""The README's request examples, read as a newcomer reads them, and a matcher for their documented answers.

An example is a `curl` command in a ```sh block (lines joined across `\\` continuations and open quotes),
followed by `# ` comment lines: the answer it documents. That answer is, in this order, all optional:

- a status: `201 ...`, or a status line `HTTP/1.1 304 Not Modified` (nothing written: 200);
- header lines, `Name: value` (the names compared in any case, the values as strings with elisions);
- a JSON body, right after the status or at the start of a line;
- prose: anything after the body, or after a status not followed by a body (`204: that token ...`), is for
  people only.

In the documented JSON, `...` or `…` elides: as a member of an object, the object's other members; as the last
item of a list, the list's other items; as a value, any value; inside a string, any characters there (so
`"1f6c…"` is a string starting with `1f6c`). Everything written out must match exactly, and an object or list
without an elision must have exactly the members or items written. An answer starting with `(not checked: why)`
marks an example that cannot be checked by running it, and so does that line as the first of a block for all of
the block's examples: they are not run at all.

Nothing here knows Django: test_readme.py runs the requests and feeds the answers back.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ELISION = re.compile(r"\.\.\.|…")
NOT_CHECKED = "(not checked:"


@dataclass(frozen=True)
class Example:
    line: int  # README line of the command's first line
    command: str  # the whole command, continuations joined
    answer: str  # the documented answer, comment markers removed ("" when none is written)
    block_not_checked: bool = False  # its block starts with `# (not checked: ...)`

    @property
    def checked(self) -> bool:
        return not (self.block_not_checked or self.answer.startswith(NOT_CHECKED))


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: str | None
    show_headers: bool  # curl -i: the answer is the status line and headers, then the body
    grep: str | None  # `| grep -i WORD`: only the output lines containing WORD (any case)


@dataclass(frozen=True)
class Documented:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: object = None  # a pattern (see parse_pattern) or None when no body is documented


# --- reading README.md ---------------------------------------------------------------------------------------------


def sh_blocks(markdown: str) -> list[tuple[int, list[str]]]:
    """The ```sh blocks: (line number of their first line, their lines without the block's indentation)."""
    blocks, lines, current, indent, start = [], markdown.splitlines(), None, "", 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if current is None and stripped == "```sh":
            current, indent, start = [], line[: len(line) - len(line.lstrip())], number + 1
        elif current is not None and stripped == "```":
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line.removeprefix(indent))
    return blocks


def _complete(command: str) -> bool:
    """Whether the shell would stop reading here: no trailing `\\` and no quote left open."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def examples(markdown: str) -> list[Example]:
    """Every curl command of the sh blocks, with the comment lines right below it, in README order."""
    found = []
    for start, lines in sh_blocks(markdown):
        block_not_checked = bool(lines) and lines[0].lstrip().removeprefix("#").lstrip().startswith(NOT_CHECKED)
        i = 0
        while i < len(lines):
            if not lines[i].lstrip().startswith("curl "):
                i += 1
                continue
            line, command = start + i, lines[i].strip()
            while not _complete(command) and i + 1 < len(lines):
                i += 1
                if command.endswith("\\"):  # a continuation: the shell reads on as if on one line
                    command = command[:-1].rstrip() + " " + lines[i].strip()
                else:  # inside a quoted argument: the line break is part of it
                    command = command + "\n" + lines[i]
            i += 1
            answer = []
            while i < len(lines) and lines[i].lstrip().startswith("#"):
                answer.append(lines[i].lstrip().removeprefix("#").removeprefix(" ").rstrip())
                i += 1
            found.append(Example(line, command, "\n".join(answer).strip(), block_not_checked))
    return found


def request_of(command: str) -> Request:
    """The request a curl command sends (the options the README uses: -s, -i, -X, -H, -d; `| grep -i WORD`)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|")  # a `|` inside quotes stays in its word
    lexer.whitespace_split = True
    words = list(lexer)
    pipe = words.index("|") if "|" in words else len(words)
    words, grep_words = words[:pipe], words[pipe + 1 :]
    if words[0] != "curl":
        raise ValueError(f"not a curl command: {command!r}")
    method, headers, body, url, show_headers = None, {}, None, None, False
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest)
        elif re.fullmatch(r"-[si]+", word):
            show_headers = show_headers or "i" in word
        elif word.startswith("-"):
            raise ValueError(f"curl option {word} is not understood here")
        else:
            url = word
    if url is None:
        raise ValueError(f"no URL in {command!r}")
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if grep_words and (grep_words[:2] != ["grep", "-i"] or len(grep_words) != 3):
        raise ValueError(f"only `| grep -i WORD` is understood: {command!r}")
    return Request(
        method=method or ("POST" if body is not None else "GET"),
        path=path,
        headers=headers,
        body=body,
        show_headers=show_headers,
        grep=grep_words[2] if grep_words else None,
    )


# --- documented answers ------------------------------------------------------------------------------------------

HEADER_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]*): (.*)")
STATUS_LINE = re.compile(r"HTTP/[0-9.]+ (\d{3})(?: [A-Za-z' -]+)?")
STATUS = re.compile(r"(\d{3})(?=[\s:]|$)")


def documented(answer: str) -> Documented:
    """The status, headers and body an answer documents (see the module's docstring for the form). An answer in
    no such form is a ValueError: the README must not drift into examples that nothing checks."""
    status, headers, lines = None, {}, answer.strip().split("\n")
    if match := STATUS_LINE.fullmatch(lines[0]):  # curl -i's first line: headers and a body may follow
        status = int(match.group(1))
        lines.pop(0)
    elif match := STATUS.match(lines[0]):
        status, rest = int(match.group(1)), lines[0][match.end() :].lstrip(" ")
        if not rest.startswith(("{", "[")):
            return Documented(status=status)  # prose follows: "204: that token gets 401 from now on"
        lines[0] = rest
    while lines and not lines[0].startswith(("{", "[")):
        line = lines.pop(0).strip()
        if match := HEADER_LINE.fullmatch(line):
            headers[match.group(1).lower()] = match.group(2)
        elif line not in ("", "...", "…"):
            raise ValueError(f"not a status, header or JSON body: {line[:80]!r} (in {answer[:80]!r})")
    body = parse_pattern("\n".join(lines))[0] if lines else None  # anything after the body is prose
    return Documented(status=status, headers=headers, body=body)


class Any:
    """`...` as a value: anything."""

    def __repr__(self) -> str:
        return "..."


@dataclass(frozen=True)
class Glob:
    """A string with elisions: the parts written, in order, anything between them."""

    parts: tuple[str, ...]

    def matches(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        return re.fullmatch(".*".join(re.escape(part) for part in self.parts), value, flags=re.DOTALL) is not None

    def __repr__(self) -> str:
        return json.dumps("…".join(self.parts), ensure_ascii=False)


@dataclass(frozen=True)
class Obj:
    members: dict
    open: bool  # `...` among the members: others may follow


@dataclass(frozen=True)
class Arr:
    items: list
    open: bool  # `...` as the last item: more may follow


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<elision>\.\.\.|…)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}\[\]:,])
      | (?P<literal>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)
    )""",
    re.VERBOSE,
)


def parse_pattern(text: str, position: int = 0) -> tuple[object, int]:
    """The documented JSON at `position` as a pattern (plain JSON values, Obj, Arr, Glob, Any), and where it ends."""

    def token(at: int) -> tuple[str, str, int]:
        match = _TOKEN.match(text, at)
        if not match:
            raise ValueError(f"cannot read the documented JSON at {text[at : at + 30]!r}")
        kind = match.lastgroup
        return kind, match.group(kind), match.end()

    def value(at: int) -> tuple[object, int]:
        kind, word, end = token(at)
        if kind == "elision":
            return Any(), end
        if kind == "literal":
            return json.loads(word), end
        if kind == "string":
            string = json.loads(word)
            parts = tuple(ELISION.split(string))
            return (Glob(parts) if len(parts) > 1 else string), end
        if word == "{":
            return members(end)
        if word == "[":
            return items(end)
        raise ValueError(f"unexpected {word!r} in the documented JSON at {text[at : at + 30]!r}")

    def members(at: int) -> tuple[Obj, int]:
        result, is_open = {}, False
        kind, word, end = token(at)
        if word == "}":
            return Obj(result, is_open), end
        while True:
            kind, word, end = token(at)
            if kind == "elision":
                is_open = True
            elif kind == "string":
                _, colon, end = token(end)
                if colon != ":":
                    raise ValueError(f"expected ':' after {word} in the documented JSON")
                result[json.loads(word)], end = value(end)
            else:
                raise ValueError(f"expected a member name at {text[at : at + 30]!r}")
            _, word, at = token(end)
            if word == "}":
                return Obj(result, is_open), at
            if word != ",":
                raise ValueError(f"expected ',' or '}}' at {text[end : end + 30]!r}")

    def items(at: int) -> tuple[Arr, int]:
        result, is_open = [], False
        _, word, end = token(at)
        if word == "]":
            return Arr(result, is_open), end
        while True:
            kind, _, end = token(at)
            if kind == "elision":
                is_open, end = True, end
            else:
                if is_open:
                    raise ValueError("`...` elides the rest of a list: it must be its last item")
                item, end = value(at)
                result.append(item)
            _, word, at = token(end)
            if word == "]":
                return Arr(result, is_open), at
            if word != ",":
                raise ValueError(f"expected ',' or ']' at {text[end : end + 30]!r}")

    return value(position)


def mismatches(pattern: object, actual: object, where: str = "") -> list[str]:
    """What in `actual` differs from the documented `pattern` (empty when it matches), each with its path."""
    here = where or "the body"
    if isinstance(pattern, Any):
        return []
    if isinstance(pattern, Glob):
        return [] if pattern.matches(actual) else [f"{here}: documented {pattern!r}, answered {_show(actual)}"]
    if isinstance(pattern, Obj):
        if not isinstance(actual, dict):
            return [f"{here}: documented an object, answered {_show(actual)}"]
        found = []
        for name, expected in pattern.members.items():
            if name not in actual:
                found.append(f"{where}.{name}: documented, but not in the answer")
            else:
                found += mismatches(expected, actual[name], f"{where}.{name}")
        if not pattern.open and (extra := sorted(set(actual) - set(pattern.members))):
            found.append(f"{here}: the answer has members the README does not show (and no `...`): {extra}")
        return found
    if isinstance(pattern, Arr):
        if not isinstance(actual, list):
            return [f"{here}: documented a list, answered {_show(actual)}"]
        if len(actual) < len(pattern.items) or (not pattern.open and len(actual) != len(pattern.items)):
            more = " or more" if pattern.open else ""
            return [f"{here}: documented {len(pattern.items)}{more} items, answered {len(actual)}"]
        found = []
        for index, expected in enumerate(pattern.items):
            found += mismatches(expected, actual[index], f"{where}[{index}]")
        return found
    # A plain JSON value: equal, and of the same kind (true is not 1, "45" is not 45; 45 and 45.0 are one number).
    same_kind = type(pattern) is type(actual) or {type(pattern), type(actual)} == {int, float}
    if same_kind and pattern == actual:
        return []
    return [f"{here}: documented {_show(pattern)}, answered {_show(actual)}"]


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."
