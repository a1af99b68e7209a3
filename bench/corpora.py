"""Held-out text for benchmarks: prose the bundled draft never saw.

The bundled draft is trained on Python's standard library and the Python docs; the
haystacks here come from the Debian Administrator's Handbook (Debian package
`debian-handbook`, GPL-2+/CC-BY-SA), paragraph text only.

Chinese (simplified) and Japanese prose, for `bench.languages`, comes from Debian's
translated man pages (`manpages-zh`'s zh_CN pages, `manpages-ja`; GPL and others) and
the Debian Reference (`debian-reference-zh-cn`, `debian-reference-ja`; GPL-2+), split
into dev and test by source document (see `CJK_SPLITS` below). zh_TW pages are left
out: they are the zh_CN pages converted to traditional characters.
"""

import html.parser
import re
from functools import lru_cache
from pathlib import Path

HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")


class _Paragraphs(html.parser.HTMLParser):
    """Text of every paragraph: `<p>`, and `<div class="para">` (the handbook's own markup)."""

    def __init__(self):
        super().__init__()
        self.tag, self.depth, self.current, self.paragraphs = None, 0, [], []

    def handle_starttag(self, tag, attrs):
        if self.tag is None and (tag == "p" or (tag == "div" and ("class", "para") in attrs)):
            self.tag = tag
        if tag == self.tag:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == self.tag:
            self.depth -= 1
            if self.depth == 0:
                text = re.sub(r"\s+", " ", "".join(self.current)).strip()
                if len(text) > 80:
                    self.paragraphs.append(text)
                self.tag, self.current = None, []

    def handle_data(self, data):
        if self.depth:
            self.current.append(data)


@lru_cache(maxsize=1)
def handbook_pages() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(page file name, its paragraphs) for every handbook page, in name order."""
    if not HANDBOOK.is_dir():
        raise SystemExit("bench needs the Debian Administrator's Handbook: "
                         "apt-get install debian-handbook")
    pages = []
    for page in sorted(HANDBOOK.glob("*.html")):
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages.append((page.name, tuple(parser.paragraphs)))
    return tuple(pages)


@lru_cache(maxsize=1)
def handbook_paragraphs() -> tuple[str, ...]:
    return tuple(text for _, texts in handbook_pages() for text in texts)


@lru_cache(maxsize=2)
def handbook_split(split: str) -> tuple[str, ...]:
    """The paragraphs of `split`'s pages: "dev" the first half of the pages in name
    order, "test" the second; no page is in both."""
    pages = handbook_pages()
    half = len(pages) // 2
    chosen = pages[:half] if split == "dev" else pages[half:]
    return tuple(text for _, texts in chosen for text in texts)


def handbook_run(rng, tokens: int, count, paragraphs: tuple[str, ...] | None = None) -> list[str]:
    """Consecutive handbook paragraphs (of `paragraphs`, by default all) from a random
    start (wrapping round), until they hold `tokens` target tokens counted with blank
    lines between them."""
    paragraphs = paragraphs or handbook_paragraphs()
    start = rng.randrange(len(paragraphs))
    chosen, total = [], 0
    while total < tokens:
        chosen.append(paragraphs[(start + len(chosen)) % len(paragraphs)])
        total += count(chosen[-1] + "\n\n")
    return chosen


# --- Chinese and Japanese prose (bench.languages) ----------------------------------------
#
# Man pages (Debian packages manpages-zh, manpages-ja) rendered by groff, and the Debian
# Reference (debian-reference-zh-cn, debian-reference-ja) as plain text. A paragraph is
# kept when it holds at least CJK_MIN_CHARS characters, at least CJK_SHARE of its
# non-space characters are CJK ideographs or kana and it has no run of three spaces
# (option lists, code and tables drop out).
# The split is by source document: dev is man section 1 and the Reference's chapters 1-6,
# test is man sections 3, 5, 7 and 8 and its chapters 7 and later with the appendix
# (man sections 2, 4 and 6, and the Reference's preface, are in neither).

CJK_MANUALS = {"zh": Path("/usr/share/man/zh_CN"), "ja": Path("/usr/share/man/ja")}
CJK_REFERENCE = {"zh": Path("/usr/share/debian-reference/debian-reference.zh-cn.txt.gz"),
                 "ja": Path("/usr/share/debian-reference/debian-reference.ja.txt.gz")}
CJK_PACKAGES = {"zh": ("manpages-zh", "debian-reference-zh-cn"),
                "ja": ("manpages-ja", "debian-reference-ja")}
CJK_SPLITS = {"dev": (("1",), range(1, 7)), "test": (("3", "5", "7", "8"), range(7, 100))}
CJK_SHARE, CJK_MIN_CHARS = 0.4, 40
GROFF = ["groff", "-Kutf-8", "-Tutf8", "-mandoc", "-rLL=10000n", "-dAD=l", "-rHY=0", "-P-cbou"]
# ideographs (with extension A and compatibility forms) and kana: what CJK_SHARE counts
_CJK_LETTER = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# the above with CJK punctuation and full-width forms: no space is put between two of these
# when wrapped lines are joined
_CJK_WIDE = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# a space between two CJK letters: groff puts one where a source line breaks between them
# (and some old translations space their words), dropped from man pages
_CJK_SPACE = re.compile(r"(?<=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]) "
                        r"(?=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_TAG = re.compile(r"(\S.*?)\s{2,}(\S.*)")  # a man page's option tag, then its text
_BULLET = re.compile(r"[*+o•-] ")
_CHAPTER = {"zh": re.compile(r"第 (\d+) 章 |附录 [A-Z]\. "), "ja": re.compile(r"第(\d+)章|付録[A-Z] ")}


def cjk_prose(paragraph: str) -> bool:
    """Whether a paragraph is long enough and mostly CJK (see CJK_SHARE), and not a
    rendered table (runs of spaces between its cells)."""
    letters = len(re.sub(r"\s", "", paragraph))
    return (len(paragraph) >= CJK_MIN_CHARS and "   " not in paragraph
            and len(_CJK_LETTER.findall(paragraph)) >= CJK_SHARE * letters)


def join_lines(lines: list[str]) -> str:
    """Wrapped lines as one: nothing between two CJK characters, one space otherwise."""
    text = ""
    for line in (line.strip() for line in lines):
        if text and line:
            both = _CJK_WIDE.match(text[-1]) and _CJK_WIDE.match(line[0])
            text += "" if both else " "
        text += line
    return text


def _blocks(lines: list[str]) -> list[list[str]]:
    """Runs of lines between blank (or whitespace-only) lines."""
    blocks, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def man_paragraphs(page: Path) -> list[str]:
    """A gzipped man page's prose paragraphs: rendered one paragraph a line, the header,
    footer and section titles (unindented) dropped, option tags taken off the text and
    single spaces between CJK letters dropped (_CJK_SPACE)."""
    import gzip
    import subprocess

    source = gzip.open(page).read()
    if source.lstrip().startswith(b".so "):
        return []  # a link to another page
    rendered = subprocess.run(GROFF, input=source, capture_output=True).stdout
    lines = [line for line in rendered.decode("utf-8", "replace").replace("\x1b", "").splitlines()
             if _indent(line) > 0 or not line.strip()]
    paragraphs = []
    for block in _blocks(lines):
        # a tag on a line of its own, its text indented further below it
        if len(block) > 1 and _indent(block[0]) < _indent(block[1]):
            block = block[1:]
        texts = []
        for line in block:
            line = line.strip()
            tagged = _TAG.fullmatch(line)
            if tagged and not _CJK_LETTER.search(tagged[1]):
                line = tagged[2]
            texts.append(line)
        paragraph = _CJK_SPACE.sub("", join_lines(texts))
        if cjk_prose(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def reference_chapters(language: str) -> dict[str, list[str]]:
    """The Debian Reference's chapters ("1" ... "12", "A"), each its prose paragraphs:
    wrapped lines joined, table and rule lines and list bullets dropped."""
    import gzip

    text = gzip.open(CJK_REFERENCE[language], "rt", encoding="utf-8").read()
    text = text.replace("\xa0", " ")  # the Chinese edition's no-break spaces
    chapters: dict[str, list[str]] = {}
    name = None
    for block in _blocks(text.splitlines()):
        heading = _CHAPTER[language].match(block[0])
        if heading and _indent(block[0]) == 0:
            name = heading[1] or "A"
            chapters.setdefault(name, [])
            continue
        if name is None:  # the title page, contents and preface
            continue
        lines = [line for line in block if not re.match(r"\s*([|+]|[-=_~]{3,})", line)]
        lines = [_BULLET.sub("", line.strip(), count=1) for line in lines]
        paragraph = join_lines(lines)
        if cjk_prose(paragraph):
            chapters[name].append(paragraph)
    return chapters


@lru_cache(maxsize=4)
def cjk_documents(language: str, split: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(source document, its paragraphs) for `language` ("zh" or "ja") and `split`
    ("dev" or "test"), in a fixed order: man pages by section and name, then the
    Reference's chapters."""
    from concurrent.futures import ThreadPoolExecutor
    import os

    missing = [p for p in (CJK_MANUALS[language], CJK_REFERENCE[language]) if not p.exists()]
    if missing:
        raise SystemExit(f"bench needs {language} prose: "
                         f"apt-get install {' '.join(CJK_PACKAGES[language])}")
    sections, chapters = CJK_SPLITS[split]
    pages = sorted(page for section in sections
                   for page in (CJK_MANUALS[language] / f"man{section}").glob("*.gz"))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        rendered = list(pool.map(man_paragraphs, pages))
    documents = [(f"man{page.parent.name[3:]}/{page.name.removesuffix('.gz')}", tuple(texts))
                 for page, texts in zip(pages, rendered) if texts]
    for name, texts in reference_chapters(language).items():
        if (int(name) in chapters if name.isdigit() else split == "test") and texts:
            documents.append((f"debian-reference ch. {name}", tuple(texts)))
    return tuple(documents)


@lru_cache(maxsize=4)
def cjk_paragraphs(language: str, split: str) -> tuple[str, ...]:
    """Every prose paragraph of `language`'s `split`, documents in cjk_documents' order."""
    return tuple(text for _, texts in cjk_documents(language, split) for text in texts)


def paragraph_run(rng, paragraphs, chars: int) -> list[str]:
    """Consecutive paragraphs from a random start (wrapping round), as handbook_run, until
    they hold `chars` characters counted with blank lines between them."""
    start = rng.randrange(len(paragraphs))
    chosen, total = [], 0
    while total < chars:
        chosen.append(paragraphs[(start + len(chosen)) % len(paragraphs)])
        total += len(chosen[-1]) + 2
    return chosen
