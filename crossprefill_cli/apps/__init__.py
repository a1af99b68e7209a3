"""The front ends, each a package: the command line (`cli`), HTTP (`http`: the server,
its proxy and what they share), many records (`batch`) and MCP tools for agents (`mcp`).
They run compression through `pipeline.job.Job` and never import each other, except that
the command line starts the others (`serve`, `batch`, `mcp`)."""
