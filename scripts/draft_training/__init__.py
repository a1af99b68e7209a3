"""The training recipe of crossprefill's bundled draft model, one concern per module.

corpus (text and tokenizer), facts (synthetic facts and questions), rows (token rows
and the positions each loss looks at), curriculum (phases, mixes, learning rates,
batches), losses (the losses and the attention probe), evaluation (checkpoint eval,
speed, model card) and loop (set-up, steps, checkpoints, resume). The entry point is
scripts/train_draft.py.
"""
