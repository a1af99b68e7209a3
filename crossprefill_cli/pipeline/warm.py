"""What a long-lived front end holds across jobs: drafts, targets, a profile, and the
score cache and reference store that every job shares.

A process that compresses once (the command line, a library call) builds these for its
one `Job`. A server keeps them warm instead: `serve` (`apps.http.warm.ServerModels`)
and the MCP server (`apps.mcp.server.ToolModels`) each hold one `Warm`, in which a
draft or target is loaded once and handed to every job that names it, the profile the
server was started with (maybe a file) is read once, and every job shares the cache
and the store (a reference one call gave, a later call expands). A job over held
things runs with the holder's machine settings (device, dtype, backend), not a call's.

What a front end lets a call name (only what it was started with, or anything), when it
loads (all at start-up, or on first use) and how its jobs take turns (a lane per draft,
one lock for all) are its own, so this holder has no policy and no locks: its dicts
are read and written by whichever worker thread the front end lets in.
"""

from dataclasses import replace

from crossprefill_cli.models.cache import ScoreCache
from crossprefill_cli.models.target import DEFAULT_TARGET, TargetTokenizer
from crossprefill_cli.pipeline.draft_source import DraftSource, resolve_target
from crossprefill_cli.pipeline.job import Job
from crossprefill_cli.pipeline.profiles import load_profile
from crossprefill_cli.pipeline.references import RefStore
from crossprefill_cli.settings import Settings


class Warm:
    """Drafts and targets loaded once, a profile read once, one cache and one store."""

    def __init__(self, profile: str, *, device: str = "auto", dtype: str = "auto",
                 backend: str = "auto"):
        self.machine = dict(device=device, dtype=dtype, backend=backend)
        self.profile = load_profile(profile)  # the one started with, maybe a file
        self.sources: dict[str, DraftSource] = {}
        # by name (the default target under its own), with the warnings resolving it gave
        self.targets: dict[str, tuple[TargetTokenizer, list[str]]] = {}
        self.cache = ScoreCache()
        self.references = RefStore()

    def source(self, name: str, *, load: bool = False) -> DraftSource:
        """The draft `name` names, held from now on (a name that cannot be a draft fails
        here: `ModelLoadError`); with `load`, loaded now, and held only once it is."""
        source = self.sources[name] if name in self.sources else DraftSource(name, **self.machine)
        if load:
            source.load()
        self.sources[name] = source
        return source

    def target_of(self, name: str | None, draft: DraftSource) -> tuple[TargetTokenizer, list[str]]:
        """The target `name` names (None: the default, which falls back on `draft`'s
        tokenizer when it cannot load), resolved once, and the warnings that gave."""
        key = name or DEFAULT_TARGET
        if key not in self.targets:
            warnings: list[str] = []
            self.targets[key] = resolve_target(name, draft, warnings.append), warnings
        return self.targets[key]

    def job(self, settings: Settings, *, draft: DraftSource, target: str | None,
            flags: bool = False) -> Job:
        """The job of `settings` over what is held: `draft`, the target `target` names
        (its warnings the job's first), the held profile where the settings name it or
        none, and the holder's machine settings."""
        settings = replace(settings, **self.machine,
                           profile=settings.profile or self.profile.name).checked()
        counter, warnings = self.target_of(target, draft)
        job = Job(settings, draft=draft, target=counter, cache=self.cache,
                  references=self.references, flags=flags,
                  profile=self.profile if settings.profile == self.profile.name else None)
        for warning in warnings:
            job.warn(warning)
        return job
