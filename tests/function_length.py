#!/usr/bin/env python3
"""Function length check: lists the C++ functions in src/, cmd/ and include/ over a length.

usage: tests/function_length.py [--list N] [SOURCE_DIR]
  without --list: fails (exit 1) on a function over 100 lines that has no entry in
  tests/function_length.allow ("path name  # reason"), and on an entry that no longer matches
  such a function, so that the list does not outlive what it excuses;
  --list N: prints every function over N lines, longest first.

The sources are as clang-format 14 writes them (a ctest checks it), which this relies on: a
function's opening brace stands alone on a line (BreakBeforeBraces), and its closing brace is the
next line at the same indentation that holds only '}'. A line holding only '{' starts a function
unless what precedes it is a class, struct, union, enum or namespace head, or a braced
initialisation. Lambdas and blocks inside a function count towards the function's length.
"""
import os
import re
import sys

LIMIT = 100
HEAD_KEYWORDS = re.compile(r"^\s*(template\s*<.*>\s*)?(class|struct|union|enum|namespace|extern)\b")
NAME = re.compile(r"([A-Za-z_~][A-Za-z0-9_:~<>]*(?:operator\s*\S+?)?)\s*\(")


def functions(path):
    """Yields (name, first line, length in lines) for each function defined in `path`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.strip() != "{":
            continue
        indent = line[: len(line) - len(line.lstrip())]
        # The head: the lines before the brace up to one that ends a statement, a block or a comment.
        j = i - 1
        head = []
        while j >= 0:
            prev = lines[j].strip()
            if prev == "" or prev.endswith((";", "{", "}", ":")) or prev.startswith(("//", "#", "*", "/*", "}")):
                break
            head.insert(0, prev)
            j -= 1
        text = " ".join(head)
        if not text or HEAD_KEYWORDS.match(text) or "(" not in text or text.endswith("="):
            continue
        end = i + 1
        while end < len(lines) and lines[end] != indent + "}":
            end += 1
        m = NAME.search(text)
        if m is None:
            continue
        name = m.group(1)
        first = j + 2
        yield name, first, end + 1 - first + 1


def scan(root):
    found = []
    for top in ("src", "cmd", "include"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for fn in sorted(files):
                if fn.endswith((".cpp", ".hpp")):
                    path = os.path.join(d, fn)
                    rel = os.path.relpath(path, root)
                    for name, first, length in functions(path):
                        found.append((length, rel, name, first))
    found.sort(key=lambda t: (-t[0], t[1], t[3]))
    return found


def read_allow(path):
    allow = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            body = line.split("#", 1)[0].strip()
            if not body:
                continue
            if "#" not in line or not line.split("#", 1)[1].strip():
                raise SystemExit(f"{path}:{n}: an entry needs a reason after '#'")
            rel, name = body.split()
            allow[(rel, name)] = n
    return allow


def main(argv):
    list_over = None
    if argv and argv[0] == "--list":
        list_over = int(argv[1])
        argv = argv[2:]
    root = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    found = scan(root)
    if list_over is not None:
        for length, rel, name, first in found:
            if length > list_over:
                print(f"{length:5d}  {rel}:{first}  {name}")
        return 0
    allow = read_allow(os.path.join(root, "tests", "function_length.allow"))
    bad = 0
    used = set()
    for length, rel, name, first in found:
        if length <= LIMIT:
            continue
        if (rel, name) in allow:
            used.add((rel, name))
            continue
        print(f"{rel}:{first}: {name} is {length} lines (over {LIMIT}): split it where a reader wants names "
              "for the steps, or add it to tests/function_length.allow with a reason")
        bad += 1
    for key in sorted(set(allow) - used):
        print(f"tests/function_length.allow:{allow[key]}: {key[0]} {key[1]} is no longer over {LIMIT} lines: remove the entry")
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
