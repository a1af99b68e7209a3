"""The only modules that import torch, transformers or tiktoken, and the drafts' two
engines: `reader` (windows and lookahead, engine-neutral), `numpy_draft` (a Llama
forward in numpy, no torch), `draft` (transformers, with its attention probes in
`scoring`) and `backends` (which of the two runs a draft); how models load (`loading`),
CPU threads (`threads`), target tokenizers (`target`, and `target_process` that builds
one beside the draft), and the score cache (`cache`)."""
