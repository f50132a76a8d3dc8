#!/usr/bin/env python3
"""docs/options.md's table of option structs, from the headers.

  options_table.py [--write | --check] [REPO]

Every `struct <Name>Options` under include/keras, with its fields in declaration order and their
defaults (designated initializers must follow that order). --write regenerates the table between
the markers in docs/options.md; --check (the ctest docs_options_table) fails when the table and the
headers disagree, printing the difference.
"""
import difflib
import pathlib
import re
import sys

BEGIN, END = "<!-- options-table:begin -->", "<!-- options-table:end -->"
STRUCT = re.compile(r'\bstruct\s+(\w*Options)\s*\{')


def strip_comments(s: str) -> str:
    s = re.sub(r'/\*.*?\*/', ' ', s, flags=re.S)
    return re.sub(r'//[^\n]*', '', s)


def body_of(text: str, open_brace: int) -> str:
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == '{':
            depth += 1
        elif text[i] == '}':
            depth -= 1
            if depth == 0:
                return text[open_brace + 1:i]
    raise ValueError("unbalanced braces")


def statements(body: str):
    """Top-level statements of a struct body (split at ';' outside braces and parentheses)."""
    out, depth, cur = [], 0, []
    for ch in body:
        if ch in '{(':
            depth += 1
        elif ch in '})':
            depth -= 1
            if depth == 0 and ch == '}' and '(' in ''.join(cur).split('=')[0]:
                out.append(''.join(cur) + ch)  # a member function body ends without ';'
                cur = []
                continue
        if ch == ';' and depth == 0:
            out.append(''.join(cur))
            cur = []
        else:
            cur.append(ch)
    return [' '.join(s.split()) for s in out if s.strip()]


def fields(body: str):
    r = []
    for st in statements(body):
        head = st.split('=')[0]
        if '(' in head or st.startswith(('using ', 'static ', 'friend ', 'template', 'struct ', 'enum ')):
            continue  # functions, aliases, constants
        m = re.match(r'(.*?)\s*(\w+)\s*(\{.*\})?$', head.strip())
        if not m:
            continue
        default = st.split('=', 1)[1].strip() if '=' in st else (m.group(3) or '')
        r.append((m.group(2), m.group(1).strip(), default))
    return r


def table(repo: pathlib.Path) -> str:
    inc = repo / "include" / "keras"
    rows = []
    for hdr in sorted(inc.rglob("*.hpp")):
        text = strip_comments(hdr.read_text())
        for m in STRUCT.finditer(text):
            fs = fields(body_of(text, m.end() - 1))
            cells = ", ".join(f"`{n}`" + (f" = `{d}`" if d else "") for n, _, d in fs).replace("|", "\\|")
            rows.append(f"| `{m.group(1)}` | `{hdr.relative_to(inc).as_posix()}` | {cells} |")
    return "\n".join(["| struct | header | fields, in declaration order (= default) |", "|---|---|---|"] + rows) + "\n"


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repo = pathlib.Path(args[0]) if args else pathlib.Path(__file__).resolve().parents[2]
    doc = repo / "docs" / "options.md"
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        print(f"{doc}: markers {BEGIN} / {END} not found", file=sys.stderr)
        return 1
    pre, rest = text.split(BEGIN, 1)
    current, post = rest.split(END, 1)
    want = "\n" + table(repo)
    if "--write" in sys.argv:
        doc.write_text(pre + BEGIN + want + END + post)
        return 0
    if current != want:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), want.splitlines(True), "docs/options.md", "headers"))
        print("docs/options.md is out of date: run tests/docs/options_table.py --write", file=sys.stderr)
        return 1
    print(f"docs/options.md: {want.count(chr(10)) - 2} option structs match the headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
