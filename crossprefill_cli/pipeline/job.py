"""One compression job: settings and an input in, the result and its printed form out.

Every front end runs compression through a `Job`: the CLI (a process per prompt), the
server and its proxy, batch (locally and in Ray actors) and the library. The job owns
the order of the steps, so no front end re-orders them:

    input text -> its format (plain text, or chat messages) -> the draft's analysis,
    with the budget checked against what must be kept before the draft reads (the
    draft's tokens are enough) -> the budgeted selection -> the printed product

A target still building in its child process is checked beside the draft's reading
instead of before it (`_Beside`): a too-small budget or a target that cannot load
stops the draft at its next window, and the draft's work overlaps the target's build.

What a front end adds comes in as resources and hooks: a loaded draft (`DraftSource`),
a target (a name, a loaded `TargetTokenizer`, or a `PendingTarget` built in a child
process), a score cache, an already loaded profile, and callbacks for warnings and the
draft's progress. Warnings are also collected on the result, in the order they came.

A job's errors and warnings name the settings as its caller knows them: by field
(`keep_rate`, `window`: the library's keywords, a server's request, a batch record) or,
for a command line (`flags=True`), by flag (`--keep-rate`); see `settings.by_fields`.
"""

import functools
import json
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from crossprefill_cli.models.cache import ScoreCache
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.models.target_process import PendingTarget
from crossprefill_cli.pipeline.analysis import (Analysis, Progress, Scorer, analyse,
                                                analyse_messages, check_budget_fits, finish,
                                                product, restore_messages)
from crossprefill_cli.pipeline.draft_source import DraftSource, resolve_target
from crossprefill_cli.pipeline.profiles import Profile
from crossprefill_cli.pipeline.references import RefStore
from crossprefill_cli.results import Result
from crossprefill_cli.settings import Settings, by_fields, check_budget_options, named_by_fields
from crossprefill_cli.text import messages
from crossprefill_cli.text.messages import read_format
from crossprefill_cli.text.source import check_text

if TYPE_CHECKING:
    from crossprefill_cli.models.draft import Draft

DEFAULT_PROFILE = "text"


@dataclass
class AnalysedInput:
    """The draft's reading of one input: the text it read (for messages, their joined
    texts), the messages if any, and the analysis every budget is chosen from."""

    text: str
    conversation: messages.Conversation | None
    analysis: Analysis
    reference: str | None = None  # the text's ID in the reference store (settings.refs)


@dataclass
class Done:
    """A compression: what the draft read, the messages if any, the result, and what a
    command prints without --json (the compressed text, or the messages' JSON in the
    input's style)."""

    text: str
    conversation: messages.Conversation | None
    result: Result
    printed: str
    analysis: Analysis

    def messages(self) -> object:
        """The compressed messages as JSON data (None for plain text)."""
        if self.conversation is None:
            return None
        return restore_messages(self.conversation, self.analysis, self.result)


def _naming(method):
    """`method`, its errors naming the settings as the job's caller does (`Job.flags`)."""
    @functools.wraps(method)
    def named(self: "Job", *args, **kwargs):
        with self.naming():
            return method(self, *args, **kwargs)
    return named


class Job:
    """Compression with one `Settings`, over the resources a front end holds."""

    def __init__(self, settings: Settings, *, draft: DraftSource | None = None,
                 target: "str | TargetTokenizer | PendingTarget | None" = None,
                 cache: ScoreCache | None = None, profile: Profile | None = None,
                 references: RefStore | None = None,
                 scorer: Scorer | None = None, keep: tuple[tuple[int, int], ...] = (),
                 on_warning: Callable[[str], None] | None = None,
                 on_progress: Progress | None = None, flags: bool = False):
        """`scorer`, a function, scores instead of the settings' named scorer (see
        `pipeline.analyse`); `keep` are character spans kept whole; `references` is where
        the omitted texts go with `settings.refs` (None: the default store). Errors and
        warnings name the settings by field (`keep_rate`), or with `flags` by their
        command-line flags (`--keep-rate`)."""
        self.flags = flags
        with self.naming():
            self.settings = settings.checked()
            self.source = draft or DraftSource.of(settings)
        self.scorer = scorer if scorer is not None else settings.scorer
        self.keep = tuple(keep)
        self._target = settings.target if target is None else target
        self._counter: TargetTokenizer | None = None
        self.cache = None if settings.no_cache else (cache or ScoreCache())
        self.references = (references or RefStore()) if settings.refs else None
        self.profile = profile or settings.profile or DEFAULT_PROFILE
        self.on_progress = on_progress
        self.warnings: list[str] = []
        self._on_warning = on_warning

    def warn(self, message: str) -> None:
        message = self._named(message)
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    def naming(self) -> AbstractContextManager:
        """A block whose errors name the settings as the job does (see `flags`)."""
        return nullcontext() if self.flags else named_by_fields()

    def _named(self, message: str) -> str:
        return message if self.flags else by_fields(message)

    @_naming
    def target(self) -> TargetTokenizer:
        """The target the budget is counted in (waited for, the first time)."""
        if self._counter is None:
            pending = self._target if isinstance(self._target, PendingTarget) else None
            self._counter = resolve_target(
                pending.spec if pending else self._target, self.source, self.warn,
                build=pending.result if pending else None)
        return self._counter

    @_naming
    def analyse(self, source_text: str, *, with_budget: bool = True) -> AnalysedInput:
        """Read `source_text` in the settings' format and score it with the draft; with
        `with_budget`, a budget below what must be kept fails before the draft reads."""
        check_text(source_text)
        conversation = read_format(source_text, self.settings.format)
        text = source_text if conversation is None else conversation.text
        reference = self.references.put(text) if self.references is not None else None
        spans = dict(keep=self.keep) if conversation is None else dict(
            keep=conversation.keep(), heads=conversation.heads(), messages=True)
        knobs = self.settings
        budget = dict(keep_rate=knobs.keep_rate, target_tokens=knobs.target_tokens)
        checking = _Beside()

        def before_scoring(starts, settings, structure) -> None:
            def check() -> None:
                counter = self.target()  # a target that cannot load fails early
                if with_budget:
                    check_budget_fits(text, starts, settings, structure, counter, **budget,
                                      **spans, reference=reference)

            # a target still building in its process is checked while the draft reads
            if self._counter is None and isinstance(self._target, PendingTarget) \
                    and not self._target.ready():
                checking.start(check)
            else:
                check()

        options = dict(profile=self.profile, draft=self.source, query=knobs.query,
                       detect_query=knobs.detect_query, scorer=self.scorer,
                       chunk_size=knobs.chunk_size, pool_kernel=knobs.pool_kernel,
                       lookahead=knobs.lookahead, delimiter=knobs.delimiter,
                       window=knobs.window, kind=knobs.kind, include=knobs.include,
                       exclude=knobs.exclude, cache=self.cache,
                       on_progress=checking.watching(self.on_progress),
                       before_scoring=before_scoring)
        analysis = (analyse(text, keep=self.keep, **options) if conversation is None
                    else analyse_messages(conversation, **options))
        checking.finish()
        return AnalysedInput(text, conversation, analysis, reference)

    @_naming
    def compress(self, source_text: str) -> Done:
        """Compress `source_text` to the settings' budget."""
        analysed = self.analyse(source_text)
        return self.finish(analysed)

    @_naming
    def finish(self, analysed: AnalysedInput, **budget) -> Done:
        """The compression of an analysed input, at the settings' budget or at `budget`
        (`keep_rate`, `target_tokens`) when given."""
        budget = budget or dict(keep_rate=self.settings.keep_rate,
                                target_tokens=self.settings.target_tokens)
        check_budget_options(**budget)
        counter = self.target()
        earlier = list(self.warnings)
        result = finish(analysed.analysis, target=counter, on_warning=self.warn,
                        reference=analysed.reference, **budget)
        result.warnings[:] = [*earlier, *map(self._named, result.warnings)]
        return Done(analysed.text, analysed.conversation, result,
                    product(result, analysed.analysis, analysed.conversation),
                    analysed.analysis)

    @_naming
    def estimate(self, analysed: AnalysedInput, rates: list[float], *,
                 context_window: int | None = None, price_per_mtok: float | None = None,
                 must_keep: list[str] = ()) -> dict:
        """The `estimate` report for each keep rate, from one analysis (made with
        `with_budget=False`: each rate is a budget of its own)."""
        from crossprefill_cli.pipeline.estimate import estimate

        for rate in rates:
            check_budget_options(rate, None)
        report = estimate(analysed.analysis, self.target(), rates,
                          context_window=context_window, price_per_mtok=price_per_mtok,
                          must_keep=must_keep, reference=analysed.reference)
        report["warnings"] = list(self.warnings)
        return report


class _Beside:
    """A check that runs in a thread while the draft reads; its error is raised at the
    draft's next window, or when the reading ends (`finish`)."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, check: Callable[[], None]) -> None:
        def run() -> None:
            try:
                check()
            except BaseException as error:  # handed to the reading thread
                self._error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def watching(self, on_progress: Progress | None) -> Progress:
        def progress(done: int, total: int) -> None:
            if self._error is not None:
                raise self._error
            if on_progress is not None:
                on_progress(done, total)

        return progress

    def finish(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error


def compress(text: str, *, keep_rate: float | None = None, target_tokens: int | None = None,
             profile: str | Profile = DEFAULT_PROFILE, draft: "str | Draft" = BUILTIN,
             target: str | TargetTokenizer | None = None, query: str | None = None,
             detect_query: bool = True, keep: tuple[tuple[int, int], ...] = (),
             chunk_size: int | None = None, pool_kernel: int | None = None,
             lookahead: int | None = None, delimiter: str | None = None,
             window: int | None = None, device: str = "auto", dtype: str = "auto",
             backend: str = "auto", kind: str = "auto", include: str | None = None,
             exclude: str | None = None, refs: bool = False,
             scorer: "str | Scorer | None" = None, cache: ScoreCache | None = None,
             references: RefStore | None = None, on_progress: Progress | None = None,
             on_warning: Callable[[str], None] | None = None) -> Result:
    """Compress `text` to a target-token budget with cross-family speculative prefill.

    The keywords are the `Settings` fields, and resources a caller may hold already: a
    loaded `Draft`, `TargetTokenizer` or `Profile`. `scorer` names how units are scored
    (`profiles.SCORERS`; None: the profile's, by default `evidence`) or is a function
    giving every draft token an importance (a baseline), which then scores alone through
    the same chunking, budget and assembly. With a `cache`, the draft's scores are reused
    across calls that differ only in budget or chunking (None: no cache). Without a
    `query`, the question inside the text steers unless `detect_query` is False. The
    character spans in `keep` are kept whole, like the head and tail. With `refs`, every
    gap marker carries a reference to its text, stored in `references` (None: the store
    in the cache folder), which `RefStore.expand` gives back.
    """
    job = _library_job(dict(keep_rate=keep_rate, target_tokens=target_tokens, query=query,
                            detect_query=detect_query, chunk_size=chunk_size,
                            pool_kernel=pool_kernel, lookahead=lookahead, delimiter=delimiter,
                            window=window, device=device, dtype=dtype, backend=backend,
                            kind=kind, include=include, exclude=exclude, refs=refs),
                       profile=profile, draft=draft, target=target, scorer=scorer, cache=cache,
                       keep=keep, references=references, on_progress=on_progress,
                       on_warning=on_warning)
    return job.compress(text).result


def compress_messages(data: "str | list | dict", *, keep_rate: float | None = None,
                      target_tokens: int | None = None,
                      target: str | TargetTokenizer | None = None, query: str | None = None,
                      detect_query: bool = True, profile: str | Profile = DEFAULT_PROFILE,
                      draft: "str | Draft" = BUILTIN, scorer: "str | Scorer | None" = None,
                      cache: ScoreCache | None = None, references: RefStore | None = None,
                      **knobs) -> tuple[object, Result]:
    """Compress chat messages (a JSON text, a list of messages or an object holding one
    under `messages`): the same JSON with long contents compressed, and the report.
    `knobs` are the other `Settings` fields (`chunk_size`, `window`, ...)."""
    job = _library_job(dict(keep_rate=keep_rate, target_tokens=target_tokens, query=query,
                            detect_query=detect_query, format="messages", **knobs),
                       profile=profile, draft=draft, target=target, scorer=scorer, cache=cache,
                       references=references)
    done = job.compress(data if isinstance(data, str) else json.dumps(data))
    return done.messages(), done.result


def _library_job(values: dict, *, profile: "str | Profile", draft: "str | Draft",
                 target: "str | TargetTokenizer | None", scorer: "str | Scorer | None",
                 cache: ScoreCache | None, **hooks) -> Job:
    """The Job of a library call: its settings, and the resources it was handed (its
    errors, like the job's, name the settings by field)."""
    named = dict(profile=profile if isinstance(profile, str) else profile.name,
                 draft=draft if isinstance(draft, str) else None,
                 scorer=scorer if isinstance(scorer, str) else None,
                 target=target if isinstance(target, str) else None)
    settings = Settings(**values, **named, no_cache=cache is None)
    with named_by_fields():
        source = None if isinstance(draft, str) else DraftSource(draft, device=settings.device,
                                                                 dtype=settings.dtype,
                                                                 backend=settings.backend)
    return Job(settings, draft=source, target=target, cache=cache,
               profile=None if isinstance(profile, str) else profile,
               scorer=scorer if callable(scorer) else None, **hooks)
