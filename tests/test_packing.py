"""Files packed into one repository dump (`text.packing`): the dump reader finds every
file again, under its path, with exactly its text, and the directory tree first."""

import pytest

from crossprefill_cli.errors import InputError
from crossprefill_cli.text import dumps
from crossprefill_cli.text.packing import pack, tree_lines

FILES = [("src/app.py", "def load(path):\n    return open(path).read()\n"),
         ("README.md", "# Title\nno final newline"),
         ("src/sub/markup.xml", "<files>\n</file>\n<file>\n"),  # markup that is not a header
         ("empty.txt", ""),
         ("crlf.txt", "one\r\ntwo\r\n")]


def test_every_file_comes_back_with_its_path_and_text():
    packed = pack(FILES)
    found = dumps.detect(packed)
    assert found.format == "repomix-xml"
    assert [file.path for file in found.files] == [path for path, _ in FILES]
    for file, (_, text) in zip(found.files, FILES):
        body = packed[file.body_start:file.body_end]
        # whole lines: a text without a final newline gets the one the packer adds
        assert body == (text if text.endswith("\n") or not text else text + "\n")
        assert file.language == dumps.language_of(file.path)


def test_the_directory_tree_comes_first_and_nests_folders():
    assert tree_lines([path for path, _ in FILES]) == [
        "README.md\n", "crlf.txt\n", "empty.txt\n", "src/\n", "  app.py\n", "  sub/\n",
        "    markup.xml\n"]
    found = dumps.detect(pack(FILES))
    assert [depth for *_, depth in found.tree.entries] == [0, 0, 0, 0, 1, 1, 2]
    assert found.tree.entries[0][0] < found.files[0].start


@pytest.mark.parametrize("files, message", [
    ([], "no files to pack"),
    ([('say "hi".txt', "x")], "without double quotes or line breaks"),
    ([("a\nb.txt", "x")], "without double quotes or line breaks"),
    ([("dump.xml", 'x\n<file path="other.py">\ny\n')], "reads as a packed file's header"),
])
def test_what_cannot_be_read_back_is_refused(files, message):
    with pytest.raises(InputError, match=message):
        pack(files)
