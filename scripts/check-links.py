#!/usr/bin/env python3
"""Checks the links of every tracked Markdown file, offline.

    python3 scripts/check-links.py [FILE.md ...]   (default: every tracked *.md)
    python3 scripts/check-links.py --self-test     (must report exactly the planted broken links)

A relative link must name a tracked file or a directory holding one (so a
file that exists only on this machine still fails); a `#anchor`, alone or
after a Markdown file, must name a heading of that file (GitHub's anchors:
lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`... for
repeats) or an HTML `id`/`name` in it. Links with a scheme (https:, mailto:)
are not fetched: no network. Code blocks and code spans are not links.

Standard library only, so it runs wherever Python 3 does. Exits 1 on any
broken link, printing `file:line: target: why` for each.
"""

import os
import re
import subprocess
import sys
import unicodedata
from urllib.parse import unquote

# [text](dest "title") and ![alt](dest), dest optionally in <...>.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+[\"'(].*?[\"')])?\s*\)")
# [label]: dest "title"   (reference definitions, at most 3 spaces in)
REFDEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
# <a href="..."> <img src="...">
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<[a-z][^>]*?\s(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def tracked_files():
    out = subprocess.run(
        ["git", "ls-files", "-z"], check=True, capture_output=True, text=True
    ).stdout
    return [f for f in out.split("\0") if f]


def strip_code_spans(line):
    """Blanks `code spans` (keeping columns), so their text is never a link."""
    return re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def prose_lines(text):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield n, line


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LN" or cat == "Mn":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(text):
    """Every anchor a Markdown file offers."""
    found, seen = set(), {}
    lines = list(prose_lines(text))
    for i, (_, line) in enumerate(lines):
        title = None
        m = HEADING.match(line)
        if m:
            title = m.group(2)
        elif (
            i + 1 < len(lines)
            and line.strip()
            and re.match(r"^ {0,3}(=+|-+)\s*$", lines[i + 1][1])
            and lines[i + 1][0] == lines[i][0] + 1
            and not re.match(r"^ {0,3}([-*+]|\d+[.)])\s", line)
        ):
            title = line.strip()
        if title is not None:
            base = slug(title)
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        for a in HTML_ANCHOR.findall(line):
            found.add(a)
    return found


def links(text):
    """(line number, target) of every link in a Markdown file's prose."""
    for n, line in prose_lines(text):
        m = REFDEF.match(line)
        if m:
            yield n, m.group(2)
            continue
        bare = strip_code_spans(line)
        for m in INLINE.finditer(bare):
            yield n, m.group(1)
        for m in HTML_LINK.finditer(bare):
            yield n, m.group(1)


def check(md, files, dirs, cache):
    """Broken links of one file, as `file:line: target: why`."""
    problems = []
    text = read(md, cache)
    for n, target in links(text):
        target = target.strip("<>")
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        path, _, fragment = target.partition("#")
        path = unquote(path.split("?")[0])
        if path:
            base = "" if path.startswith("/") else os.path.dirname(md)
            resolved = os.path.normpath(os.path.join(base, path.lstrip("/")))
            if resolved.startswith(".."):
                problems.append(f"{md}:{n}: {target}: outside the repository")
                continue
            if resolved not in files and resolved not in dirs:
                problems.append(f"{md}:{n}: {target}: no such tracked file or directory")
                continue
        else:
            resolved = md
        if fragment and resolved.endswith(".md") and resolved in files:
            if unquote(fragment) not in anchors(read(resolved, cache)):
                problems.append(f"{md}:{n}: {target}: no heading or anchor #{fragment} in {resolved}")
    return problems


def read(path, cache):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            cache[path] = f.read()
    return cache[path]


def run(targets=None):
    """(problems, links seen, files read) for the repository around the working directory."""
    root = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True, text=True
    ).stdout.strip()
    os.chdir(root)
    # Tracked files deleted in the work tree are not there to link to.
    files = {f for f in tracked_files() if os.path.exists(f)}
    dirs = {""}
    for f in files:
        d = os.path.dirname(f)
        while d and d not in dirs:
            dirs.add(d)
            d = os.path.dirname(d)
    targets = targets or sorted(f for f in files if f.endswith(".md"))
    cache, problems, count = {}, [], 0
    for md in targets:
        count += sum(1 for _ in links(read(md, cache)))
        problems += check(md, files, dirs, cache)
    return problems, count, len(targets)


# The self-test: a repository with every kind of link, good and broken; the
# checker must report exactly the broken ones (so it can fail).
SELF_TEST_FILES = {
    "README.md": """# Title

See [the guide](docs/guide.md), [its part](docs/guide.md#a-get-quota-part-the-usage) and [the top](#title).
Broken: [gone](docs/gone.md) and [no such part](docs/guide.md#nowhere) and [here](#nowhere).
A [titled link](docs/guide.md "The guide") and an ![image](docs/pic.png) and a [directory](docs).
External, not fetched: [site](https://example.com/x#y) and <https://example.com>.
`[in a code span](docs/span.md)` is not a link.

```sh
echo "[in a fence](docs/fence.md)"
```

[ref]: docs/refgone.md
[okref]: docs/guide.md#second

<a href="docs/htmlgone.md">html</a> <img src="docs/pic.png">
[untracked](docs/untracked.md) [escape](../outside.md) [spaced](docs/a%20b.md)

## Same
## Same
[first repeat](#same-1) [second repeat](#same-2)
""",
    "docs/guide.md": """# A `GET /quota` part: *the* usage!

Second
------

[back](../README.md#title) [anchor](#custom) <span id="custom"></span>
""",
    "docs/pic.png": "",
    "docs/a b.md": "# Spaced\n",
}
SELF_TEST_EXPECTED = {
    "README.md:4: docs/gone.md",
    "README.md:4: docs/guide.md#nowhere",
    "README.md:4: #nowhere",
    "README.md:13: docs/refgone.md",
    "README.md:16: docs/htmlgone.md",
    "README.md:17: docs/untracked.md",
    "README.md:17: ../outside.md",
    "README.md:21: #same-2",
}


def self_test():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        subprocess.run(["git", "init", "-q", "."], check=True)
        for name, text in SELF_TEST_FILES.items():
            os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
            with open(name, "w", encoding="utf-8") as f:
                f.write(text)
        subprocess.run(["git", "add", "."], check=True)
        with open("docs/untracked.md", "w", encoding="utf-8") as f:
            f.write("# Not tracked\n")
        problems, count, _ = run()
    found = {p.rsplit(": ", 1)[0] for p in problems}
    if found != SELF_TEST_EXPECTED:
        print("check-links: self-test FAILED", file=sys.stderr)
        for p in sorted(found - SELF_TEST_EXPECTED):
            print(f"  reported but fine: {p}", file=sys.stderr)
        for p in sorted(SELF_TEST_EXPECTED - found):
            print(f"  broken but missed: {p}", file=sys.stderr)
        return 1
    print(f"check-links: self-test passed ({count} links, {len(found)} broken ones found)")
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    problems, count, files = run(argv)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-links: {len(problems)} broken link(s) in {files} Markdown file(s)", file=sys.stderr)
        return 1
    print(f"check-links: {count} links in {files} Markdown files, none broken (external links not fetched)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
