"""Held-out text for benchmarks: prose the bundled draft never saw.

The bundled draft is trained on Python's standard library and the Python docs; the
haystacks here come from the Debian Administrator's Handbook (Debian package
`debian-handbook`, GPL-2+/CC-BY-SA), paragraph text only.
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
def handbook_paragraphs() -> tuple[str, ...]:
    if not HANDBOOK.is_dir():
        raise SystemExit("bench needs the Debian Administrator's Handbook: "
                         "apt-get install debian-handbook")
    parser = _Paragraphs()
    for page in sorted(HANDBOOK.glob("*.html")):
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return tuple(parser.paragraphs)


def handbook_run(rng, tokens: int, count) -> list[str]:
    """Consecutive handbook paragraphs from a random start (wrapping round), until they
    hold `tokens` target tokens counted with blank lines between them."""
    paragraphs = handbook_paragraphs()
    start = rng.randrange(len(paragraphs))
    chosen, total = [], 0
    while total < tokens:
        chosen.append(paragraphs[(start + len(chosen)) % len(paragraphs)])
        total += count(chosen[-1] + "\n\n")
    return chosen
