"""What a server holds warm: its options, and the drafts and targets it loaded.

`ServerModels` is the server's `pipeline.warm.Warm` (drafts, targets, profile, score
cache, reference store) with the server's policy on top: it loads every draft and
target once (in a thread at start-up; `ready` is set when they are loaded, `settled`
when they are loaded or have failed), and resolves what a request names to a loaded
draft, target and profile: only what the server was started with (drafts, targets,
built-in profiles and the started one) unless `allow_any_draft`; a target is found by
the name local mode resolves (`gpt-4o` is served by `o200k_base`). Requests take turns
at each draft in its `Lane`. `run` is one request's compression, through the one `Job`.
`serve` and its proxy both use it; it imports neither.
"""

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crossprefill_cli.apps.http.wire import HTTPError, Lane
from crossprefill_cli.errors import CrossprefillError
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.models.target import (DEFAULT_TARGET, TargetTokenizer, tiktoken_encoding,
                                            tiktoken_label)
from crossprefill_cli.pipeline.draft_source import DraftSource
from crossprefill_cli.pipeline.profiles import builtin_names
from crossprefill_cli.pipeline.warm import Warm
from crossprefill_cli.results import report
from crossprefill_cli.settings import MACHINE_FIELDS, SETTINGS, Settings, json_types
from crossprefill_cli.text.source import MAX_INPUT_BYTES

if TYPE_CHECKING:
    from crossprefill_cli.apps.http.proxy import ProxyOptions

ESTIMATE_FIELDS = {"keep_rates": (list,), "context_window": (int, type(None)),
                   "price_per_mtok": (int, float, type(None)), "must_keep": (list,)}
# request fields and the JSON types each may have (None: may be null): the input, every
# setting but the machine's (the server's own), and what /v1/estimate asks besides
FIELDS: dict[str, tuple[type, ...]] = {
    "text": (str,), "messages": (list, dict),
    **{setting.name: json_types(setting.type) for setting in SETTINGS
       if setting.name not in MACHINE_FIELDS}, **ESTIMATE_FIELDS}
REQUEST_SETTINGS = set(FIELDS) - {"text", "messages"} - set(ESTIMATE_FIELDS)


@dataclass
class ServerOptions:
    drafts: list[str] = field(default_factory=lambda: [BUILTIN])
    targets: list[str] = field(default_factory=list)  # empty: the default target
    profile: str = "text"
    api_key: str | None = None
    max_queue: int = 4
    max_bytes: int = MAX_INPUT_BYTES
    allow_any_draft: bool = False
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    proxy: "ProxyOptions | None" = None  # also forward LLM API calls upstream
    log_file: str | None = None  # the server's warnings and errors there, not on stderr


class ServerModels(Warm):
    """The loaded drafts and targets, and the work one request asks for."""

    def __init__(self, options: ServerOptions):
        super().__init__(options.profile, device=options.device, dtype=options.dtype,
                         backend=options.backend)
        self.options = options
        self.lanes: dict[str, Lane] = {}
        self.stopping = threading.Event()  # shutting down: queued requests get a 503
        self.ready = threading.Event()  # loaded: requests are answered
        self.settled = threading.Event()  # loaded, or failed with `failure`
        self.failure: str | None = None
        self.profiles = set(builtin_names()) | {self.profile.name}

    def load(self) -> None:
        """Load every draft and target (run in a thread at start-up)."""
        try:
            for name in self.options.drafts:
                self.source(name, load=True)
            default = self.sources[self.options.drafts[0]]
            mapped = [spec for _, spec in self.options.proxy.target_map] if self.options.proxy else []
            for name in [*(self.options.targets or [None]), *mapped]:
                self.target_of(name, default)
            self.ready.set()
        except CrossprefillError as error:
            self.failure = str(error)
        finally:
            self.settled.set()

    def target(self, name: str) -> TargetTokenizer:
        """The target called `name`, loaded now if it is not yet (`ModelLoadError`)."""
        if name not in self.targets:
            self._alias_target(name)
        return self.target_of(name, self.sources[self.options.drafts[0]])[0]

    def _alias_target(self, name: str) -> bool:
        """Serve `name` with a loaded target of the same tiktoken encoding (`gpt-4o` with
        `o200k_base`), labelled as local mode labels it; False when none is loaded. A
        default target standing in for an encoding it could not load is no such target."""
        encoding = tiktoken_encoding(name)
        if encoding is None:
            return False
        for served, (counter, warnings) in list(self.targets.items()):
            if not warnings and tiktoken_encoding(served) == encoding:
                self.targets[name] = (TargetTokenizer(tiktoken_label(name, encoding),
                                                      counter.count_batch), [])
                return True
        return False

    def lane(self, draft: str) -> Lane:
        return self.lanes.setdefault(draft, Lane(self.stopping))

    def resolve(self, body: dict) -> tuple[DraftSource, str]:
        """The loaded draft and the target's name a request asks for (HTTP 404 for one
        this server does not serve)."""
        draft = body.get("draft") or self.options.drafts[0]
        target = body.get("target") or (self.options.targets or [DEFAULT_TARGET])[0]
        if draft not in self.sources:
            if not self.options.allow_any_draft:
                raise HTTPError(404, "not_found", f"this server has no draft {draft!r}; it "
                                f"serves {', '.join(self.options.drafts)}")
            self.source(draft, load=True)
        if target not in self.targets and not self._alias_target(target):
            if not self.options.allow_any_draft:
                raise HTTPError(404, "not_found", f"this server has no target {target!r}; it "
                                f"serves {', '.join(self.targets)}")
            self.target_of(target, self.sources[draft])
        profile = body.get("profile") or self.profile.name
        if profile not in self.profiles:
            raise HTTPError(404, "unknown_profile", f"this server has no profile {profile!r}; it "
                            f"serves {', '.join(sorted(self.profiles))}")
        return self.sources[draft], target

    def run(self, body: dict, estimate_rates: list[float] | None, flags: bool = False) -> dict:
        """The report one request asks for (runs in the draft's worker thread); with
        `flags`, its messages name settings by flag (a command-line client)."""
        source, target = self.resolve(body)
        text = body.get("text")
        asked = {name: value for name, value in body.items() if name in REQUEST_SETTINGS}
        if text is None:
            text, asked["format"] = json.dumps(body["messages"], ensure_ascii=False), "messages"
        job = self.job(Settings(**asked), draft=source, target=target, flags=flags)
        if estimate_rates is not None:
            return job.estimate(job.analyse(text, with_budget=False), estimate_rates,
                                context_window=body.get("context_window"),
                                price_per_mtok=body.get("price_per_mtok"),
                                must_keep=body.get("must_keep", []))
        done = job.compress(text)
        return report(done.result, done.conversation, done.printed)
