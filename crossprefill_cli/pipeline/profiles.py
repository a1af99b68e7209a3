"""Compression profiles: built-in YAML files or the user's own.

A profile is a flat YAML mapping of the knobs that differ between kinds of input
(chunk size, pooling, delimiter, boundary snapping, what is always kept). Built-in
profiles ship inside the package (`crossprefill_cli/profiles/*.yaml`); a user's file
may set any subset of the fields and inherits the rest from the profile named in its
`base` field (default `text`). Unknown fields are errors, not silently ignored: a typo
in a profile should never quietly change nothing.

`language_delimiters` maps a language (as `dumps` names it from a file's path) to the
delimiter used in that language's files; a user profile's mapping is merged over its
base's. It is stored as sorted (language, delimiter) pairs so profiles stay hashable.

`scorer` names how units are scored (`evidence`, the fused default; `attention`, the
paper's scorer; `lexical` or `surprise` alone).

`lookahead: auto` leaves the number of lookahead queries to the draft (its folder's
`crossprefill.yaml`, else the paper's 8): how many of its own greedy tokens carry
signal depends on how well the draft can answer, which is the draft's property, not
the kind of input's. A number in a profile or on the command line wins.

`tree_share` and `diff_share` say what is taken before the scores: a dump's directory
tree (how a reader finds their way, and small) when it costs at most that share of the
budget, else its top levels that do; a diff that comes with the code it changes (what
is reviewed), as far as that share of the budget holds it.
"""

from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crossprefill_cli.errors import UsageError
from crossprefill_cli.text.dumps import LANGUAGES

BOUNDARIES = ("token", "word", "sentence", "line")
# How units are scored (see `evidence`): the fused default, or one signal alone
# (`attention` is the paper's scorer).
SCORERS = ("evidence", "attention", "lexical", "surprise")
AUTO = "auto"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    chunk_size: int
    pool_kernel: int
    lookahead: int | str  # a count, or AUTO: the draft's own default
    delimiter: str
    prose_delimiter: str | None  # gaps in prose (a dump's preamble, Markdown files); None: delimiter
    keep_rate: float
    boundary: str
    keep_head_lines: int
    keep_head_tokens: int
    keep_tail_tokens: int
    query_template: str
    language_delimiters: tuple[tuple[str, str], ...]
    cover_definitions: bool
    favour_named_definitions: bool
    query_rows: bool
    scorer: str
    tree_share: float  # at most this share of the budget goes to a dump's tree first
    diff_share: float  # and this to a diff that comes with the code it changes

    @property
    def prose_gap_delimiter(self) -> str:
        return self.prose_delimiter or self.delimiter

    def delimiter_for(self, language: str | None) -> str:
        """The delimiter for a file in `language` (None: not a file, or unknown)."""
        return dict(self.language_delimiters).get(language, self.delimiter)

    def with_overrides(self, **overrides: Any) -> "Profile":
        """A copy with the given non-None fields replaced, validated."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        return _validated(replace(self, **changes), source="command line")


def builtin_names() -> list[str]:
    folder = resources.files("crossprefill_cli") / "profiles"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir()
                  if entry.name.endswith(".yaml"))


def load_profile(spec: str) -> Profile:
    """Load a built-in profile by name or a user profile from a YAML path."""
    if spec in builtin_names():
        text = (resources.files("crossprefill_cli") / "profiles" / f"{spec}.yaml").read_text("utf-8")
        return _from_mapping(_parse(text, spec), source=spec, base=None)
    path = Path(spec).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text("utf-8")
        except OSError as error:
            raise UsageError(f"cannot read profile {spec}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"profile {spec} is not UTF-8 text") from None
        mapping = _parse(text, spec)
        base = mapping.pop("base", "text")
        if base not in builtin_names():
            raise UsageError(f"profile {spec}: unknown base profile {base!r}")
        return _from_mapping(mapping, source=spec, base=load_profile(base), name=path.stem)
    raise UsageError(
        f"unknown profile {spec!r}; built-in profiles: {', '.join(builtin_names())} "
        "(or give a path to a .yaml file)"
    )


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"profile {source} is not valid YAML{where}") from None
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise UsageError(f"profile {source} must be a YAML mapping of settings")
    return mapping


def _from_mapping(mapping: dict[str, Any], *, source: str, base: Profile | None,
                  name: str | None = None) -> Profile:
    known = {field.name for field in fields(Profile)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise UsageError(f"profile {source}: unknown setting(s) {', '.join(map(str, unknown))}")
    if base is None:
        missing = sorted(known - set(mapping))
        if missing:
            raise UsageError(f"profile {source}: missing setting(s) {', '.join(missing)}")
        profile = Profile(**mapping)
    else:
        if isinstance(mapping.get("language_delimiters"), dict):
            mapping["language_delimiters"] = {**dict(base.language_delimiters),
                                              **mapping["language_delimiters"]}
        profile = replace(base, **{"name": name or base.name, **mapping})
    return _validated(profile, source=source)


def _validated(profile: Profile, *, source: str) -> Profile:
    def fail(message: str) -> UsageError:
        return UsageError(f"profile {source}: {message}")

    for field_name in ("chunk_size", "pool_kernel", "lookahead"):
        value = getattr(profile, field_name)
        if field_name == "lookahead" and value == AUTO:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(f"{field_name} must be a positive integer, got {value!r}")
    for field_name in ("keep_head_lines", "keep_head_tokens", "keep_tail_tokens"):
        value = getattr(profile, field_name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise fail(f"{field_name} must be a non-negative integer, got {value!r}")
    if not isinstance(profile.keep_rate, (int, float)) or isinstance(profile.keep_rate, bool) \
            or not 0 < profile.keep_rate <= 1:
        raise fail(f"keep_rate must be in (0, 1], got {profile.keep_rate!r}")
    for field_name in ("tree_share", "diff_share"):
        value = getattr(profile, field_name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise fail(f"{field_name} must be in [0, 1], got {value!r}")
    if profile.scorer not in SCORERS:
        raise fail(f"scorer must be one of {', '.join(SCORERS)}, got {profile.scorer!r}")
    if profile.boundary not in BOUNDARIES:
        raise fail(f"boundary must be one of {', '.join(BOUNDARIES)}, got {profile.boundary!r}")
    for field_name in ("cover_definitions", "favour_named_definitions", "query_rows"):
        value = getattr(profile, field_name)
        if not isinstance(value, bool):
            raise fail(f"{field_name} must be true or false, got {value!r}")
    for field_name in ("name", "description", "delimiter", "query_template"):
        if not isinstance(getattr(profile, field_name), str):
            raise fail(f"{field_name} must be a string")
    if not profile.delimiter.strip():
        raise fail("delimiter must not be blank")
    if profile.prose_delimiter is not None and (not isinstance(profile.prose_delimiter, str)
                                                or not profile.prose_delimiter.strip()):
        raise fail("prose_delimiter must be a non-blank string or null")
    if "{query}" not in profile.query_template:
        raise fail("query_template must contain {query}")
    return replace(profile, language_delimiters=_language_delimiters(profile.language_delimiters,
                                                                    fail))


def _language_delimiters(value: Any, fail) -> tuple[tuple[str, str], ...]:
    """Validate a language -> delimiter mapping (or the stored pairs) into sorted pairs."""
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, tuple) else None
    if pairs is None:
        raise fail("language_delimiters must be a mapping of language to delimiter")
    checked = []
    for language, delimiter in pairs:
        if language not in LANGUAGES:
            raise fail(f"language_delimiters: unknown language {language!r}; known: "
                       f"{', '.join(sorted(LANGUAGES))}")
        if not isinstance(delimiter, str) or not delimiter.strip():
            raise fail(f"language_delimiters: the delimiter for {language} must be a non-blank string")
        checked.append((language, delimiter))
    return tuple(sorted(checked))
