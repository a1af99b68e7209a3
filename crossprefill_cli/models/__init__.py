"""The only modules that import torch, transformers or tiktoken: drafts (`draft`, with
its attention probes in `scoring`), how models load (`loading`), CPU threads
(`threads`), target tokenizers (`target`, and `target_process` that builds one beside
the draft), and the score cache (`cache`)."""
