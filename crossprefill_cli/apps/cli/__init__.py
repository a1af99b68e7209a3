"""The `crossprefill` command line: the commands (`commands`, with `serve_command` and
`batch_command`), their options (`options`), where they read and write
(`environment`), what people see on stderr (`render`, `estimate_table`), batch's files
(`batch_files`) and the `--server` client (`client`)."""
