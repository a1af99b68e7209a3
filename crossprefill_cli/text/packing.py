"""Files packed into one repository dump, as repomix's XML style writes it.

A front end that reads files itself (the MCP server's `compress` with `paths`) hands
the compressor one text in a format `text.dumps` recognises, so that every file keeps
its header (its path), its language comes from its path, and the directory tree comes
first, exactly as for a dump a packer wrote:

    <directory_structure>
    src/
      app.py
    README.md
    </directory_structure>

    <files>
    <file path="src/app.py">
    ...the file's text...
    </file>

    </files>

A file's text is written as it is, with a final newline when it has none (repomix, too,
puts `</file>` on a line of its own): `dumps` reads the body back as exactly that text,
whole lines. A path must fit in the header's quoted
attribute, so one holding a double quote or a line break is refused; so is a file whose
text holds a line that reads as a file header, since the dump could not be read back
into the same files.
"""

import re

from crossprefill_cli.errors import InputError

# the header as `dumps` reads it: a line holding only the opening tag
HEADER_LINE = re.compile(r'(?m)^<file path="[^"\n]+">\r?$')


def pack(files: list[tuple[str, str]]) -> str:
    """One repomix-style XML dump of `files`, (path, text) pairs in the order given
    (paths with `/` between folders); `InputError` for what cannot be packed."""
    if not files:
        raise InputError("no files to pack")
    for path, text in files:
        if not path or '"' in path or "\n" in path or "\r" in path:
            raise InputError(f"cannot pack the file {path!r}: its path must be non-empty, "
                             "without double quotes or line breaks")
        if HEADER_LINE.search(text):
            raise InputError(f"cannot pack the file {path}: it holds a line that reads as "
                             "a packed file's header; compress it alone")
    parts = ["<directory_structure>\n", *tree_lines([path for path, _ in files]),
             "</directory_structure>\n\n<files>\n"]
    for path, text in files:
        ending = "" if text.endswith("\n") or not text else "\n"
        parts.append(f'<file path="{path}">\n{text}{ending}</file>\n\n')
    parts.append("</files>\n")
    return "".join(parts)


def tree_lines(paths: list[str]) -> list[str]:
    """The directory tree of `paths`, sorted, two spaces per level, folders with a `/`."""
    lines, opened = [], ()
    for parts in sorted(tuple(path.split("/")) for path in paths):
        folders = parts[:-1]
        shared = next((depth for depth, (a, b) in enumerate(zip(opened, folders)) if a != b),
                      min(len(opened), len(folders)))
        lines += [f"{'  ' * depth}{folder}/\n" for depth, folder in enumerate(folders)
                  if depth >= shared]
        lines.append(f"{'  ' * len(folders)}{parts[-1]}\n")
        opened = folders
    return lines

