"""The draft as a user names it, loaded only when it has work to do, and the target the
budget is counted in.

A `DraftSource` knows a draft's fingerprint, defaults and engine (`models.backends`)
without loading it (a score cache hit needs no model) and tokenises with its
`tokenizer.json` alone when that file is the whole tokenizer, so checks on the draft's
tokens cost no model load.
`resolve_target` builds the named target, or for the default one falls back to the
draft's tokenizer (with a warning) when the default cannot be loaded offline.
"""

from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.backends import Backend, choose_backend, load_with
from crossprefill_cli.models.loading import (BUILTIN, check_draft_available, context_length_in,
                                             draft_config, draft_defaults, draft_fingerprint,
                                             draft_location, load_tokenizer, plain_tokenizer_file)
from crossprefill_cli.models.target import (DEFAULT_TARGET, TargetTokenizer, load_target,
                                            tokenizer_target)
from crossprefill_cli.models.tokens import encode_plain, plain_tokenizer
from crossprefill_cli.pipeline.profiles import AUTO, Profile
from crossprefill_cli.settings import Settings, check_device_and_dtype

if TYPE_CHECKING:
    from crossprefill_cli.models.reader import DraftReader


class DraftSource:
    """A draft as the user named it; the model is loaded only when it has work to do."""

    def __init__(self, draft: "str | DraftReader", *, device: str, dtype: str,
                 backend: str = "auto"):
        check_device_and_dtype(device, dtype)
        self.device, self.dtype = device, dtype
        if isinstance(draft, str):
            check_draft_available(draft)
            self.name, self.fingerprint, self._model = draft, draft_fingerprint(draft), None
            self.backend = choose_backend(draft, backend, device=device, dtype=dtype)
        else:
            self.name, self.fingerprint, self._model = draft.name, draft.fingerprint, draft
            self.backend = Backend(draft.backend)

    @classmethod
    def of(cls, settings: Settings) -> "DraftSource":
        """The draft `settings` name (the bundled one by default), run as they say."""
        return cls(settings.draft or BUILTIN, device=settings.device, dtype=settings.dtype,
                   backend=settings.backend)

    def load(self) -> "DraftReader":
        if self._model is None:
            self._model = load_with(self.backend, self.name, device=self.device, dtype=self.dtype)
        return self._model

    @cached_property
    def context_length(self) -> int:
        """The positions the draft reads at once, from its config when it is not loaded
        (read once: a server asks on every request with a question in it)."""
        if self._model is None:
            config = draft_config(self.name)
            if config is not None:
                return context_length_in(config)
        return self.load().context_length

    def score_identity(self) -> dict[str, str]:
        """What, besides the text and the scoring settings, the draft's scores depend on
        (for the score cache's key): the machine's device and dtype for transformers, and
        that its CPU forward calls are padded to a few lengths (`draft.SHAPE_BUCKET`: scores
        within float32 rounding of before, but not the same bits), float32 on the CPU for
        numpy."""
        if self.backend.name == "numpy":
            return {"device": "cpu", "dtype": "float32", "backend": "numpy"}
        return {"device": self.device, "dtype": self.dtype, "forward": "padded"}

    def settle(self, settings: Profile) -> Profile:
        """`settings` with every value left to the draft (`auto`) replaced by the draft's."""
        if settings.lookahead != AUTO:
            return settings
        return replace(settings, lookahead=draft_defaults(self.name)["lookahead"])

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The draft's token ids and token starts for `text` (`Draft.encode`), before the
        model is loaded when its tokenizer is a plain `tokenizers` file, so that checks on
        them cost no model load (the model's own tokenizer wraps that very file)."""
        if self._model is None:
            path = plain_tokenizer_file(self.name)
            if path is not None:
                return encode_plain(path, text)
        return self.load().encode(text)

    def token_count(self, text: str) -> int:
        """How many draft tokens `text` is, from the tokenizer alone when the model is
        not loaded (a score cache hit then still needs no model)."""
        if self._model is not None:
            return len(self._model.encode(text)[0])
        encoded = self.tokenizer().encode(text)
        # a `tokenizers` Encoding, or the token ids of a transformers tokenizer
        return len(getattr(encoded, "ids", encoded))

    def tokenizer(self):
        """The draft's tokenizer, without loading the model when it is not loaded yet."""
        if self._model is not None:
            return self._model.tokenizer
        path = plain_tokenizer_file(self.name)
        if path is not None:
            return plain_tokenizer(path)
        return load_tokenizer(draft_location(self.name), what=f"draft {self.name}")


def resolve_target(target: "str | TargetTokenizer | None", source: DraftSource,
                   warn: Callable[[str], None], *,
                   build: Callable[[], TargetTokenizer] | None = None) -> TargetTokenizer:
    """The named target (None: the default), built by `build` when given (a caller's way,
    such as a child process) or here; for the default one, the draft's tokenizer when it
    is unavailable, with a warning."""
    if isinstance(target, TargetTokenizer):
        return target
    made = build or (lambda: load_target(target or DEFAULT_TARGET))
    if target is not None:
        return made()
    try:
        return made()
    except ModelLoadError:
        warn(f"the default target encoding {DEFAULT_TARGET} cannot be loaded (offline?); "
             f"counting tokens with the draft's tokenizer ({source.name}) instead")
        return tokenizer_target(f"draft tokenizer ({source.name})", source.tokenizer())
