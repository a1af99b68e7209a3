"""Counting and compressing the texts of an LLM API request, for the proxy.

The proxy's routes (`proxy`) hand over the texts `chat_requests` found in a request.
`Compressor` says which target the request's `model` is counted in (`target_name`:
`target_map` patterns first, then the OpenAI names tiktoken knows, else the server's
default target; a target that cannot load is remembered, warned about once, and the
default counts instead), which texts are over `min_tokens` target tokens, and each long
text's compression at a keep rate, through the one `Job`. Each text is compressed on its
own, so the compression of a message does not change as a conversation grows: an agent
that resends its history gets the same bytes for the same messages (the upstream's
prompt cache keeps working), and from a memo of recent counts and compressions
(`Memo`: at most `MEMO_ENTRIES` of them and `MEMO_BYTES` of compressed text, the least
recently used dropped first) they cost a lookup. A text whose
compression is refused (a budget below its required parts, unusable text) stays whole,
with a warning.

Why a module of its own: this is the engine's side of the proxy. It runs in worker
threads and never sees a request or a response, so the routes (`proxy`) and the relay
to the upstream (`upstream`) stay about HTTP, and this stays about texts and tokens.
"""

import fnmatch
import hashlib
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING

from crossprefill_cli.apps.http.chat_requests import ChatTexts
from crossprefill_cli.apps.http.warm import ServerModels
from crossprefill_cli.apps.http.wire import warn
from crossprefill_cli.errors import BudgetError, InputError, ModelLoadError
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.models.target import DEFAULT_TARGET, TargetTokenizer, tiktoken_encoding
from crossprefill_cli.pipeline.job import Job
from crossprefill_cli.settings import Settings

if TYPE_CHECKING:
    from crossprefill_cli.apps.http.proxy import ProxyOptions

MEMO_ENTRIES = 1024  # counts and compressions
MEMO_BYTES = 32 * 1024 * 1024  # of compressed texts: a few large ones cannot fill memory


def target_name(model: object, target_map: tuple[tuple[str, str], ...], default: str) -> str:
    """The target a request for `model` is counted in: the first matching pattern, the
    tiktoken encoding of an OpenAI model name, else `default`."""
    if not isinstance(model, str):
        return default
    for pattern, spec in target_map:
        if fnmatch.fnmatchcase(model, pattern):
            return spec
    return tiktoken_encoding(model) or default


class Memo:
    """Recent results by key, least recently used dropped first past `MEMO_ENTRIES`
    results or `MEMO_BYTES` of texts. Its reads and writes are single dict operations,
    safe across worker threads; the byte count is a bound, not an exact tally, under
    concurrent writers."""

    def __init__(self):
        self.results: OrderedDict[tuple, object] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple, make):
        if key in self.results:
            self.results.move_to_end(key)
            return self.results[key]
        value = self.results[key] = make()
        self.bytes += _size(value)
        while len(self.results) > MEMO_ENTRIES or (self.bytes > MEMO_BYTES and self.results):
            self.bytes -= _size(self.results.popitem(last=False)[1])
        return value

    def clear(self) -> None:
        self.results.clear()
        self.bytes = 0


class Compressor:
    """Counting and compressing texts for the proxy, with a memo of recent results.

    Runs in worker threads; the memo's get and put are single dict operations."""

    def __init__(self, engine: ServerModels, options: "ProxyOptions"):
        self.engine, self.options = engine, options
        self.memo = Memo()
        self.unloadable: set[str] = set()

    def target(self, model: object) -> TargetTokenizer:
        default = (self.engine.options.targets or [DEFAULT_TARGET])[0]
        name = target_name(model, self.options.target_map, default)
        if name not in self.unloadable:
            try:
                return self.engine.target(name)
            except ModelLoadError as error:
                self.unloadable.add(name)
                warn(f"{first_line(error)}; counting {model} in {default} instead")
        return self.engine.target(default)

    def count(self, counter: TargetTokenizer, text: str) -> int:
        if len(text) < 64:  # hashing would cost more than counting
            return counter.count(text)
        return self.memo.get(("count", counter.name, _digest(text)),
                                lambda: counter.count(text))

    def survey(self, chat: ChatTexts, model: object) -> tuple[TargetTokenizer, list[int], int]:
        """The request's target, its candidates over `min_tokens` target tokens, and the
        target tokens of all its texts."""
        counter = self.target(model)
        counts = [self.count(counter, t.text) for t in chat.texts]
        return counter, [i for i in chat.candidates if counts[i] > self.options.min_tokens], \
            sum(counts)

    def compressed(self, text: str, query: str | None, rate: float, counter: TargetTokenizer,
                   refs: bool) -> str | None:
        """`text` compressed at `rate` (with references in its markers: `refs`), or None
        when it stays whole."""
        key = ("text", counter.name, rate, query, refs, self.engine.profile.name, _digest(text))
        return self.memo.get(key, lambda: self._compress(text, query, rate, counter, refs))

    def _compress(self, text: str, query: str | None, rate: float, counter: TargetTokenizer,
                  refs: bool) -> str | None:
        engine = self.engine
        settings = Settings(keep_rate=rate, query=query, detect_query=False,
                            profile=engine.profile.name, refs=refs)
        try:  # what it warns is the server's log, read by who started it: flags
            return Job(settings, draft=engine.sources[engine.options.drafts[0]], target=counter,
                       cache=engine.cache, profile=engine.profile,
                       references=engine.references, flags=True).compress(text).result.text
        except (BudgetError, InputError) as error:
            warn(f"a text of {self.count(counter, text):,} tokens is forwarded whole: "
                 f"{first_line(error)}")
            return None


def _size(value: object) -> int:
    return sys.getsizeof(value) if isinstance(value, str) else 0


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
