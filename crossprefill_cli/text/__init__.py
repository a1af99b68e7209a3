"""What the input is: decoding (`source`), the question inside a prompt and chat
transcripts (`query`), chat messages as JSON (`messages`), repository dumps (`dumps`),
code outlines (`outline`), Markdown (`markdown`), and words and sentences in scripts
written without spaces (`scripts`). Pure Python on strings; imports
nothing of the package but `errors` and `settings`."""
