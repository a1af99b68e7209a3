"""What the input is: decoding (`source`), the question inside a prompt and chat
transcripts (`query`), chat messages as JSON (`messages`), repository dumps (`dumps`),
code outlines (`outline`) and Markdown (`markdown`). Pure Python on strings; imports
nothing of the package but `errors` and `settings`."""
