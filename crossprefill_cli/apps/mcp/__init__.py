"""`crossprefill mcp`: compression as MCP tools over stdio, for agents. The tools and
their schemas, derived from `settings.Settings` (`tools`), the folders files may be read
from (`roots`) and the server that holds the models warm (`server`). It needs the `mcp`
extra, and imports no other front end."""
