"""Every option is declared once (`settings.Settings`) and every front end reaches it.

The CLI's options, the server's request fields, the MCP tools' schemas and batch's
defaults are derived from the declaration; the library's `compress` keywords are written out (for readers and
editors) and checked here against it, defaults included. A new setting that a front
end cannot reach fails here.
"""

import inspect

import click
import pytest
import typer

from crossprefill_cli.apps.batch import records as batch
from crossprefill_cli.apps.cli.commands import app
from crossprefill_cli.apps.http import server as serve
from crossprefill_cli.apps.mcp.tools import DEFAULTS, HELD, TOOLS
from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.pipeline import job
from crossprefill_cli.settings import BUDGET_FIELDS, MACHINE_FIELDS, SETTINGS, Settings

# where the library says the same thing another way
LIBRARY_WAYS = {"format": "compress_messages", "no_cache": "cache"}
# what None means for a setting, where the library names it
LIBRARY_DEFAULTS = {"profile": "text", "draft": BUILTIN}


def command(name: str) -> click.Command:
    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("name, left_out", [
    ("compress", set()), ("inspect", set()), ("estimate", set(BUDGET_FIELDS)),
    ("batch", {"format"})])
def test_every_setting_is_an_option_of_each_command_with_its_default(name, left_out):
    options = {param.name: param for param in command(name).params}
    for setting in SETTINGS:
        if setting.name in left_out:
            assert setting.name not in options
            continue
        assert setting.name in options, setting.name
        assert set(setting.metadata["flags"][0].split("/")) <= set(
            options[setting.name].opts + options[setting.name].secondary_opts)
        assert options[setting.name].default == setting.default


def test_every_setting_but_the_machines_is_a_request_field():
    for setting in SETTINGS:
        assert (setting.name in serve.FIELDS) == (setting.name not in MACHINE_FIELDS)
    assert set(MACHINE_FIELDS) == {"device", "dtype", "backend"}


@pytest.mark.parametrize("tool, left_out", [
    ("compress", set(MACHINE_FIELDS)), ("estimate", {*MACHINE_FIELDS, *BUDGET_FIELDS})])
def test_every_setting_but_the_machines_is_an_argument_of_the_mcp_tools(tool, left_out):
    properties = TOOLS[tool][1]["properties"]
    for setting in SETTINGS:
        assert (setting.name in properties) == (setting.name not in left_out), setting.name
        if setting.name in properties:
            assert properties[setting.name]["description"], setting.name
            # the models the server holds are its own defaults; refs is on for agents
            expected = None if setting.name in HELD else DEFAULTS.get(setting.name,
                                                                      setting.default)
            assert properties[setting.name].get("default") == expected, setting.name


def test_the_mcp_command_holds_the_machines_settings_and_the_default_models():
    options = {param.name: param for param in command("mcp").params}
    for name in (*MACHINE_FIELDS, "draft", "target", "profile"):
        assert options[name].default == getattr(Settings, name), name


def test_batch_records_default_to_the_settings():
    assert batch.BatchSettings is Settings
    assert inspect.signature(batch.compress_many).parameters["settings"].default == Settings()


def test_the_library_takes_every_setting_with_the_same_default():
    keywords = inspect.signature(job.compress).parameters
    for setting in SETTINGS:
        if setting.name in LIBRARY_WAYS:
            way = LIBRARY_WAYS[setting.name]
            assert way in keywords or hasattr(job, way)
            continue
        assert setting.name in keywords, setting.name
        expected = LIBRARY_DEFAULTS.get(setting.name, setting.default)
        assert keywords[setting.name].default in (setting.default, expected), setting.name


@pytest.mark.parametrize("changes, message", [
    ({"keep_rate": 1.5}, "keep rate must be in (0, 1], got 1.5"),
    ({"target_tokens": 0}, "--target-tokens must be a positive number, got 0"),
    ({"format": "yaml"}, "unknown --format 'yaml'; choose one of text, messages, auto"),
    ({"device": "tpu"}, "unknown device 'tpu'; choose one of auto, cpu, cuda, mps"),
    ({"window": 0}, "--window must be a positive number of draft tokens, got 0"),
    ({"query": "  "}, "the query is empty"),
])
def test_settings_check_their_own_values(changes, message):
    with pytest.raises(UsageError) as raised:
        Settings(**changes).checked()
    assert str(raised.value) == message
    assert Settings().checked() == Settings()
