"""The MCP server's tools: names, descriptions and JSON Schemas, derived from `Settings`.

`compress` takes an input (`text`, or `paths` under the server's roots) and every
setting that is not the machine's (`device`, `dtype` and `backend` are the server's,
fixed when it starts); `estimate` the same but the budget, which it asks for as several
keep rates; `expand` a gap marker's reference, or a line range of a file. Each setting
becomes a property of its field's name, JSON type and help, the command-line flags in
the help named by their fields instead (`settings.by_fields`). `draft`, `target` and
`profile` default to what the server was started with; `refs` is on by default here,
since an agent can ask for what a gap left out (the `expand` tool). The schemas say no more than every client
accepts (no `oneOf` at the top, one type per property): a null argument counts as
absent, and what needs more than a schema (`text` or `paths`, value ranges) is checked
by the server and `Settings.checked`. This module imports no MCP SDK.
"""

from dataclasses import Field

from crossprefill_cli.settings import (BUDGET_FIELDS, ESTIMATE_RATES, MACHINE_FIELDS, SETTINGS,
                                      by_fields, json_types)

# what the server holds for all calls unless a call names another (draft, target, profile)
HELD = ("draft", "target", "profile")
DEFAULTS = {"refs": True}  # where a tool's default is not the command line's
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}

INPUT = {
    "text": {"type": "string", "description": "The text to compress (give text or paths)."},
    "paths": {"type": "array", "items": {"type": "string"}, "description": (
        "Files to compress instead of text: paths or globs (** for any depth) under the "
        "server's roots, relative to them or absolute. Several files are packed into one "
        "repository dump, each under a header with its path.")},
}
ESTIMATE_ONLY = {
    "keep_rates": {"type": "array", "items": {"type": "number"}, "minItems": 1,
                   "default": list(ESTIMATE_RATES),
                   "description": "The keep rates to try, each in (0, 1]."},
    "context_window": {"type": "integer", "minimum": 1, "description": "Say whether each "
                       "result fits this many target tokens."},
    "price_per_mtok": {"type": "number", "minimum": 0, "description": "Input price per "
                       "million target tokens, to show the money saved."},
    "must_keep": {"type": "array", "items": {"type": "string"}, "description": "Strings that "
                  "must survive: finds the smallest keep rate that keeps them all."},
}
EXPAND = {
    "ref": {"type": "string", "description": "A gap marker's reference, such as "
            "7f3a9c01:120-480 (or the whole marker): gives back the text it left out."},
    "path": {"type": "string", "description": "Or a file under the server's roots, to read "
             "lines of (start_line, end_line)."},
    "start_line": {"type": "integer", "default": 1, "description": "First line of path to "
                   "give, counted from 1."},
    "end_line": {"type": "integer", "description": "Last line of path to give (default: "
                 "the file's last)."},
}


def json_type(setting: Field) -> str:
    """The JSON type of a setting's values (None is no value: the argument is left out)."""
    kinds = {JSON_TYPES[kind] for kind in json_types(setting.type) if kind is not type(None)}
    return "number" if kinds == {"integer", "number"} else kinds.pop()


def description(setting: Field) -> str:
    meta = setting.metadata
    text = by_fields(meta["help"])
    shown = "the server's" if setting.name in HELD else meta["shown_default"]
    return text + (f" Default: {shown}." if shown else "")


def setting_property(setting: Field) -> dict:
    prop = {"type": json_type(setting), "description": description(setting)}
    default = DEFAULTS.get(setting.name, setting.default)
    if default is not None and setting.name not in HELD:
        prop["default"] = default
    return prop


def settings_properties(*, without: tuple[str, ...]) -> dict[str, dict]:
    """The properties of every setting but the machine's and those named in `without`."""
    return {setting.name: setting_property(setting) for setting in SETTINGS
            if setting.name not in (*MACHINE_FIELDS, *without)}


def schema(properties: dict[str, dict]) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False}


TOOLS = {
    "compress": (
        "Compress a long text, or files read from the server's roots, to a budget counted "
        "in the target model's tokens. What stays is the input's own text, in order; each "
        "gap is marked, with a reference (ref ID:START-END) that the expand tool turns "
        "back into the text left out. Give a query: it steers what is kept.",
        schema({**INPUT, **settings_properties(without=())})),
    "estimate": (
        "For each keep rate: the target tokens a compression would leave, the prefill "
        "saved, whether it fits a context window and whether given strings survive, from "
        "one reading of the input (text or paths).",
        schema({**INPUT, **settings_properties(without=BUDGET_FIELDS), **ESTIMATE_ONLY})),
    "expand": (
        "Give back, exactly, the text a gap marker of compress left out (ref), or lines "
        "of a file under the server's roots (path, start_line, end_line).",
        schema(EXPAND)),
}
