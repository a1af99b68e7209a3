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
    def __init__(self):
        super().__init__()
        self.depth, self.current, self.paragraphs = 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.depth -= 1
            text = re.sub(r"\s+", " ", "".join(self.current)).strip()
            if len(text) > 80:
                self.paragraphs.append(text)
            self.current = []

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
