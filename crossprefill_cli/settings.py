"""Every compression option, declared once.

`Settings` is the one declaration of what a compression can be asked for: each field's
type, default, help text, command-line flags and JSON name (the field's own name).
Every front end derives its surface from it instead of restating it: the CLI's options
(`apps.cli.options.settings_options`), the server's request fields
(`apps.http.warm.FIELDS`), a batch record's defaults (`apps.batch.records`), and the
library's `compress` keywords (`pipeline.job`), which are these fields. Adding an option
is one field here plus its use in the pipeline; a test checks that every front end
reaches every field with the same default.

A value left None means "the profile's" (the scoring knobs), "the bundled one" (the
draft), "the default" (the target, the profile) or, through a server, the server's
choice. `device` and `dtype` say how this machine runs the draft: a server keeps its
own (`machine` fields are not request fields). This module imports nothing but the
standard library and `errors`, so every layer may use it.

Messages (errors, warnings) name a setting by its command-line flag (`--keep-rate`),
since the command line is where most of them are read. Every other front end names
settings by their fields (`keep_rate`: the library's keywords, a server's request, a
batch record, an MCP tool's arguments), and shows a message through `by_fields` (or
raises through `named_by_fields`): one translation, derived from the declaration below.
"""

import re
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

from crossprefill_cli.errors import CrossprefillError, UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("auto", "numpy", "torch")
INPUT_FORMATS = ("text", "messages", "auto")
# What an input is (`text.kinds`): auto reads it from the text; text forbids any structure.
KINDS = ("auto", "text", "log", "json", "jsonl", "yaml", "diff", "python")


def setting(default: Any, help: str, *flags: str, shown_default: str | None = None,
            budget: bool = False, machine: bool = False) -> Any:
    """A `Settings` field: its default, help and CLI flags; `shown_default` is what the
    help shows as the default where None stands for something; `budget` marks the budget
    fields (`estimate` asks for several keep rates instead); `machine` the fields a server
    decides for itself."""
    return field(default=default, metadata={
        "help": help, "flags": flags, "shown_default": shown_default, "budget": budget,
        "machine": machine})


@dataclass(frozen=True)
class Settings:
    """How to compress: every option a front end may set (see the module docstring)."""

    keep_rate: float | None = setting(
        None, "Share of the input's target tokens to keep, in (0, 1] (default: the "
        "profile's).", "--keep-rate", "-r", budget=True)
    target_tokens: int | None = setting(
        None, "Hard ceiling in target tokens (wins over --keep-rate).", "--target-tokens", "-n",
        budget=True)
    profile: str | None = setting(
        None, "Profile: text, code, or a YAML file.", "--profile", "-p",
        shown_default="text")
    draft: str | None = setting(
        None, "Draft model: builtin, a Hugging Face causal LM id, or a local directory.",
        "--draft", "-d", shown_default="builtin")
    target: str | None = setting(
        None, "Target tokenizer: a tiktoken encoding (o200k_base), an OpenAI model (gpt-4o), "
        "or a Hugging Face tokenizer id or directory.", "--target", "-t",
        shown_default="o200k_base")
    query: str | None = setting(
        None, "The question the compressed text must answer (steers scoring, not printed).",
        "--query", "-q")
    format: str = setting(
        "text", "text, messages (OpenAI-style chat JSON: the same JSON comes out, long "
        "contents compressed) or auto (messages when the input parses as such).", "--format")
    kind: str = setting(
        "auto", "What the input is, for how it is cut and what is kept first: auto (read "
        "from the text: dumps, chats, logs, JSON, JSON Lines, YAML, diffs), text, log, json, "
        "jsonl, yaml, diff or python.", "--kind")
    include: str | None = setting(
        None, "In a repository dump, keep only files matching these comma-separated globs "
        "(as repomix's --include); the others keep their header.", "--include")
    exclude: str | None = setting(
        None, "In a repository dump, drop the files matching these comma-separated globs "
        "(their header stays).", "--exclude")
    detect_query: bool = setting(
        True, "Without --query, steer by the question found in the text (a final question, "
        "an instruction, a chat's last user turn).", "--detect-query/--no-detect-query")
    scorer: str | None = setting(
        None, "How chunks are scored: evidence (the draft's attention fused with the "
        "question's words and their links), attention (the paper's scorer), lexical or "
        "surprise (overrides the profile).", "--scorer", shown_default="evidence")
    chunk_size: int | None = setting(
        None, "Draft tokens per chunk (overrides the profile).", "--chunk-size")
    pool_kernel: int | None = setting(
        None, "Average-pooling kernel (overrides the profile).", "--pool-kernel")
    lookahead: int | None = setting(
        None, "Lookahead queries: the last prompt token plus greedy tokens (overrides the "
        "profile; default: the draft's, else 8).", "--lookahead")
    delimiter: str | None = setting(
        None, "Marker for omitted text (overrides the profile's, per-language ones "
        "included).", "--delimiter")
    window: int | None = setting(
        None, "Draft tokens scored at once (default: what the draft's context allows).",
        "--window")
    device: str = setting("auto", "auto, cpu, cuda or mps.", "--device", machine=True)
    dtype: str = setting("auto", "auto, float32, bfloat16 or float16.", "--dtype", machine=True)
    backend: str = setting(
        "auto", "What runs the draft: numpy (a small Llama draft, such as the bundled one, "
        "float32 on the CPU, without importing torch), torch (transformers: any draft, any "
        "device) or auto (numpy where it can).", "--backend", machine=True)
    refs: bool = setting(
        False, "Give each gap marker a reference to the text it stands for (ref "
        "ID:START-END, counted in the budget), kept in a local store: `crossprefill expand "
        "REF` prints it.", "--refs/--no-refs")
    no_cache: bool = setting(False, "Neither read nor write the draft-score cache.",
                             "--no-cache")

    def checked(self) -> "Settings":
        """These settings, or the `UsageError` of the first value out of range; what
        needs a profile or a model (a scorer's name, a window's room) is checked there."""
        check_budget_options(self.keep_rate, self.target_tokens)
        check_choice("--format", self.format, INPUT_FORMATS)
        check_choice("--kind", self.kind, KINDS)
        check_device_and_dtype(self.device, self.dtype)
        check_choice("--backend", self.backend, BACKENDS)
        if self.window is not None and self.window < 1:
            raise UsageError(f"--window must be a positive number of draft tokens, got "
                             f"{self.window}")
        if self.query is not None and not self.query.strip():
            raise UsageError("the query is empty")
        return self


SETTINGS = fields(Settings)
BUDGET_FIELDS = tuple(f.name for f in SETTINGS if f.metadata["budget"])
MACHINE_FIELDS = tuple(f.name for f in SETTINGS if f.metadata["machine"])
# the keep rates `estimate` tries when asked for none (it takes them instead of the budget)
ESTIMATE_RATES = (0.1, 0.2, 0.3, 0.5)
# each setting's long flags, without their dashes (both of a --x/--no-x pair), and the
# field each stands for
FLAG_FIELDS = {flag.lstrip("-"): setting.name for setting in SETTINGS
               for flag in setting.metadata["flags"][0].split("/")}
FLAG = re.compile(r"--([a-z][a-z-]*)")
# sent by the command line's --server client, which prints what local mode prints: the
# server then names the settings in its messages by flag, not by field
FLAGS_HEADER = "X-Crossprefill-Names"


def by_fields(text: str) -> str:
    """`text` (a message or a help) with each setting's flag named by its field, as the
    front ends but the command line know it (`--keep-rate` -> `keep_rate`); other flags
    (`--keep-rates`, `--api-key`) stay as they are."""
    return FLAG.sub(lambda flag: FLAG_FIELDS.get(flag[1], flag[0]), text)


@contextmanager
def named_by_fields() -> Iterator[None]:
    """Let the block's `CrossprefillError` out with its message `by_fields` (the same
    error, its class and traceback kept)."""
    try:
        yield
    except CrossprefillError as error:
        error.args = (by_fields(str(error)),)
        raise


def value_type(setting: Any) -> type:
    """The type a `Settings` field's value has when one is given (its None stands for a
    default): `float` for `float | None`."""
    kinds = [kind for kind in typing.get_args(setting.type) if kind is not type(None)]
    return kinds[0] if kinds else setting.type


def json_types(kind: Any) -> tuple[type, ...]:
    """The JSON values (as Python types) a field of type `kind` takes in a request."""
    kinds = typing.get_args(kind) or (kind,)
    return tuple(t for k in kinds for t in ((int, float) if k is float else (k,)))


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def check_device_and_dtype(device: str, dtype: str) -> None:
    check_choice("device", device, DEVICES)
    check_choice("dtype", dtype, DTYPES)


def check_budget_options(keep_rate: float | None, target_tokens: int | None) -> None:
    if keep_rate is not None and not 0 < keep_rate <= 1:
        raise UsageError(f"keep rate must be in (0, 1], got {keep_rate}")
    if target_tokens is not None and target_tokens < 1:
        raise UsageError(f"--target-tokens must be a positive number, got {target_tokens}")
