"""`crossprefill mcp`: the SDK's own client, over stdio, against the real server process.

One server serves the whole module (started with the tiny test draft and target, its
roots a folder of files beside one it must never read); each call is bounded in time.
The client records every line of the server's stdout that is not a protocol message:
there must be none.
"""

import os
import re
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import long_text

from crossprefill_cli.apps.mcp.tools import TOOLS
from crossprefill_cli.settings import BUDGET_FIELDS, MACHINE_FIELDS, SETTINGS
from crossprefill_cli.text import dumps
from crossprefill_cli.text.packing import pack

mcp = pytest.importorskip("mcp")
anyio = pytest.importorskip("anyio")
from anyio.from_thread import start_blocking_portal  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

CALL_SECONDS = 120  # a compression of the tiny draft takes a second or two
NEEDLE = "The harbour fee for the blue ketch was settled at 4,215 coins on day 61."
TEXT = long_text(60, needle=NEEDLE, at=30)
MARKER = re.compile(r"\s*\[\.\.\. [\d,]+ tokens? · ref ([0-9a-f]+):(\d+)-(\d+)\]\s*")
APP = "import os\n\n\ndef load(path):\n    return open(path).read()\n"
NOTES = long_text(30)


class Client:
    """A client session held open across tests (in a portal's event loop), its calls
    made from plain test functions."""

    def __init__(self, portal, session, unparsed: list):
        self.portal, self.session, self.unparsed = portal, session, unparsed

    def call(self, tool: str, **arguments):
        async def bounded():
            with anyio.fail_after(CALL_SECONDS):
                return await self.session.call_tool(tool, arguments)
        return self.portal.call(bounded)

    def tools(self):
        async def bounded():
            with anyio.fail_after(CALL_SECONDS):
                return await self.session.list_tools()
        return self.portal.call(bounded)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """The server's root (files, a link out, a binary file) and a folder outside it."""
    root, outside = tmp_path_factory.mktemp("root"), tmp_path_factory.mktemp("outside")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP)
    (root / "notes.txt").write_text(NOTES)
    (root / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (outside / "secret.txt").write_text("never to be read\n")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    return root, outside


@pytest.fixture(scope="module")
def client(offline_tokenizers, llama_dir, target_dir, folders):
    root, _ = folders
    parameters = StdioServerParameters(
        command=sys.executable, env=dict(os.environ),
        args=["-m", "crossprefill_cli", "mcp", "--root", str(root), "--draft", str(llama_dir),
              "--target", str(target_dir)])
    unparsed: list = []

    async def record(message) -> None:
        if isinstance(message, Exception):  # a stdout line that is no protocol message
            unparsed.append(message)

    async def initialized(session: ClientSession) -> None:
        with anyio.fail_after(CALL_SECONDS):
            await session.initialize()

    with start_blocking_portal() as portal, ExitStack() as stack:
        read, write = stack.enter_context(portal.wrap_async_context_manager(
            stdio_client(parameters)))
        session = stack.enter_context(portal.wrap_async_context_manager(
            ClientSession(read, write, message_handler=record)))
        portal.call(initialized, session)
        yield Client(portal, session, unparsed)
    assert unparsed == []


def kept_pieces(compressed: str) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The kept text between gap markers, and each marker's reference."""
    references = [(identity, int(start), int(end))
                  for identity, start, end in MARKER.findall(compressed)]
    return MARKER.split(compressed)[::4], references


def assert_verbatim_in_order(original: str, pieces: list[str]) -> None:
    position = 0
    for piece in filter(None, (piece.strip() for piece in pieces)):
        found = original.find(piece, position)
        assert found >= 0, f"not verbatim, or out of order: {piece[:60]!r}"
        position = found + len(piece)


def test_the_tools_and_their_schemas_come_from_the_settings(client):
    listed = {tool.name: tool for tool in client.tools().tools}
    assert set(listed) == {"compress", "estimate", "expand"}
    for name, tool in listed.items():
        assert tool.input_schema == TOOLS[name][1] and tool.description == TOOLS[name][0]
    compress = listed["compress"].input_schema["properties"]
    estimate = listed["estimate"].input_schema["properties"]
    for setting in SETTINGS:
        assert (setting.name in compress) == (setting.name not in MACHINE_FIELDS)
        assert (setting.name in estimate) == (setting.name not in (*MACHINE_FIELDS,
                                                                   *BUDGET_FIELDS))
    assert compress["refs"]["default"] is True and compress["keep_rate"]["type"] == "number"
    assert compress["query"]["description"].startswith("The question the compressed text")


def test_a_text_is_compressed_within_budget_with_references_that_expand(client):
    result = client.call("compress", text=TEXT, query="What was the harbour fee for the "
                         "blue ketch?", target_tokens=150)
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    compressed = result.content[0].text
    assert report["text"] == compressed and report["tokens_after"] <= report["budget"] == 150
    assert report["tokens_before"] > 150 and report["query_source"] == "given"
    assert result.content[1].text.startswith(  # the counts, for clients that show text only
        f"{report['tokens_before']:,} → {report['tokens_after']:,} target tokens")
    pieces, references = kept_pieces(compressed)
    assert references, "no gap marker carries a reference"
    assert_verbatim_in_order(TEXT, pieces)
    identity, start, end = references[0]
    expanded = client.call("expand", ref=f"{identity}:{start}-{end}")
    assert not expanded.is_error and expanded.content[0].text == TEXT[start:end]


def test_files_are_packed_with_their_headers_and_compressed(client):
    result = client.call("compress", paths=["src/*.py", "notes.txt"], keep_rate=0.3,
                         query="How is a path loaded?")
    assert not result.is_error, result.content[0].text
    compressed, report = result.content[0].text, result.structured_content
    assert report["tokens_after"] <= report["budget"]
    assert '<file path="src/app.py">' in compressed and '<file path="notes.txt">' in compressed
    packed = pack([("src/app.py", APP), ("notes.txt", NOTES)])
    assert [file.path for file in dumps.detect(packed).files] == ["src/app.py", "notes.txt"]
    pieces, references = kept_pieces(compressed)
    assert references
    assert_verbatim_in_order(packed, pieces)
    identity, start, end = references[-1]
    expanded = client.call("expand", ref=f"ref {identity}:{start}-{end}")
    assert expanded.content[0].text == packed[start:end]


def test_a_line_range_of_a_file_is_given_exactly(client):
    result = client.call("expand", path="src/app.py", start_line=4, end_line=5)
    assert not result.is_error, result.content[0].text
    assert result.content[0].text == "def load(path):\n    return open(path).read()\n"
    assert result.structured_content["lines_in_file"] == 5


def test_an_estimate_has_a_row_per_keep_rate(client):
    result = client.call("estimate", text=TEXT, keep_rates=[0.5, 0.2], must_keep=[NEEDLE])
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    assert [row["keep_rate"] for row in report["rows"]] == [0.2, 0.5]
    assert report["must_keep"] == [NEEDLE] and "smallest_keep_rate" in report


@pytest.mark.parametrize("tool, arguments, message", [
    ("compress", {"paths": ["../outside/secret.txt"]}, "is outside the roots"),
    ("expand", {"path": "link.txt"}, "a symbolic link out of them is not followed"),
    ("compress", {"paths": ["*.txt"]}, "a symbolic link out of them is not followed"),
    ("compress", {"paths": ["image.bin"]}, "image.bin: input looks binary"),
    ("compress", {"paths": ["nothing/*.py"]}, "no file matches nothing/*.py"),
    ("expand", {"ref": "0123abcd:1-2"}, "no stored input 0123abcd"),
    ("expand", {"ref": "nonsense"}, "is not a reference"),
    ("compress", {"text": TEXT, "keep_rate": 2.0}, "keep rate must be in (0, 1]"),
    ("compress", {"text": TEXT, "keep_rate": "half"}, "keep_rate: 'half' is not of type"),
    ("compress", {"text": TEXT, "device": "cuda"}, "Additional properties are not allowed"),
    ("compress", {"text": TEXT, "paths": ["notes.txt"]}, "give text, or paths"),
    ("estimate", {"text": TEXT, "keep_rates": []}, "keep_rates: [] should be non-empty"),
    ("compress", {"text": TEXT, "window": 100_000}, "error: window 100000 plus the query"),
])
def test_refusals_are_tool_errors_and_the_server_goes_on(client, tool, arguments, message):
    result = client.call(tool, **arguments)
    assert result.is_error
    assert result.content[0].text.startswith("crossprefill: error: ")
    assert message in result.content[0].text
    assert not client.call("expand", path="notes.txt", start_line=1, end_line=1).is_error


def test_an_absolute_path_outside_the_roots_is_refused(client, folders):
    _, outside = folders
    result = client.call("expand", path=str(outside / "secret.txt"))
    assert result.is_error and "is outside the roots" in result.content[0].text
    assert "never to be read" not in result.content[0].text


def test_without_the_sdk_the_command_says_which_extra_to_install(monkeypatch):
    from typer.testing import CliRunner

    from crossprefill_cli import extras
    from crossprefill_cli.apps.cli.commands import app

    for name in [name for name in sys.modules if name.split(".")[0] == "mcp"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mcp", None)
    monkeypatch.delitem(sys.modules, "crossprefill_cli.apps.mcp.server", raising=False)
    result = CliRunner().invoke(app, ["mcp"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("crossprefill: error: crossprefill mcp needs the 'mcp' extra (mcp "
                             f"is not installed): {extras.install_advice('mcp')}\n")
