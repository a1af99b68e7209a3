"""The training text: PSF-2.0 sources found on the machine, cleaned, split, tokenized.

Two sources, both under the PSF licence so that the weights derived from them can be
shipped under it too: the Python 3.11 standard library sources (no site-packages, no
test directories: tests are mostly repetitive fixtures) and the Python documentation
reST sources of Debian's python3-doc package, with the reST markup that would otherwise
teach the model roles and underlines stripped (`clean_rst`). Changelogs and files
under 2,000 characters are left out. About 5% of the files, chosen by a hash of their
path (`is_heldout`), are held out for evaluation, so the split is stable across runs
and machines and never depends on file order.

`word_list` gives the word pool of the synthetic facts: corpus words of 4-11 letters,
skipping the 150 most common ones (function words make poor subjects and values).

The tokenizer is a byte-level BPE, vocab 8192, trained on the training files, with
`<|bos|>` (id 0) and `<|eos|>` (id 1). Its default encoding prepends `<|bos|>`, like
the rows the model is trained on; `add_special_tokens=False` adds nothing.

`Corpus` draws passages of a given length in characters, the file chosen with a
probability proportional to its length and the passage starting at a line start when
one is near, so that the facts are inserted into natural text of every part of the
corpus.
"""
from __future__ import annotations

import bisect
import collections
import hashlib
import random
import re
from pathlib import Path

STDLIB = Path("/root/.pyenv/versions/3.11.7/lib/python3.11")
DOCS = Path("/usr/share/doc/python3.11/html/_sources")


def clean_rst(t: str) -> str:
    t = re.sub(r":[a-zA-Z:]+:`!?~?([^`<]*?)(?:\s*<[^>`]*>)?`", r"\1", t)
    t = re.sub(r"``([^`]*)``", r"\1", t)
    t = re.sub(r"`([^`<]*?)(?:\s*<[^>`]*>)?`_+", r"\1", t)
    t = re.sub(r"^\s*([=\-~^*#+\"'`]{3,})\s*$\n?", "", t, flags=re.M)
    t = re.sub(r"^\.\. _[^\n]*:\s*\n", "", t, flags=re.M)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t


def is_heldout(path: str) -> bool:
    return int(hashlib.md5(path.encode()).hexdigest(), 16) % 20 == 0


def load_corpus():
    """(docs, code): each a dict of "train" and "eval" lists of file texts."""
    docs, code = {"train": [], "eval": []}, {"train": [], "eval": []}
    for p in sorted(DOCS.rglob("*.rst.txt")):
        rel = str(p.relative_to(DOCS))
        if "changelog" in rel:
            continue
        t = clean_rst(p.read_text(errors="replace"))
        if len(t) > 2000:
            docs["eval" if is_heldout(rel) else "train"].append(t)
    for p in sorted(STDLIB.rglob("*.py")):
        rel = str(p.relative_to(STDLIB))
        parts = rel.split("/")
        if "site-packages" in parts or any(x in ("test", "tests", "idle_test") for x in parts):
            continue
        try:
            t = p.read_text()
        except UnicodeDecodeError:
            continue
        if len(t) > 2000:
            code["eval" if is_heldout(rel) else "train"].append(t)
    return docs, code


def word_list(texts, n_skip=150, n_take=6000):
    """The synthetic facts' word pool: frequent lowercase words, the most common skipped."""
    c = collections.Counter()
    for t in texts:
        c.update(w for w in re.findall(r"\b[a-z]{4,11}\b", t))
    common = [w for w, k in c.most_common() if k >= 5]
    return sorted(common[n_skip:n_skip + n_take])


def train_tokenizer(docs, code, out_dir: Path, vocab=8192):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                                  special_tokens=["<|bos|>", "<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs["train"] + code["train"], trainer)
    bos = tok.token_to_id("<|bos|>")
    # add_special_tokens=True prepends <|bos|>; add_special_tokens=False adds nothing.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A $B:1",
                                      special_tokens=[("<|bos|>", bos)]),
    ])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|eos|>", model_max_length=1024)
    fast.save_pretrained(out_dir)
    return fast


class Corpus:
    """Passages of a list of texts, a text drawn with a probability proportional to its length."""

    def __init__(self, texts):
        self.texts = texts
        self.cum = []
        s = 0
        for t in texts:
            s += len(t)
            self.cum.append(s)

    def passage(self, rng: random.Random, nchars: int) -> str:
        x = rng.randrange(self.cum[-1])
        i = bisect.bisect_right(self.cum, x)
        t = self.texts[i]
        start = rng.randrange(max(1, len(t) - nchars // 2))
        nl = t.find("\n", start)
        start = nl + 1 if 0 <= nl < start + 400 else start
        p = t[start:start + nchars]
        while len(p) < nchars:                      # short file: continue with another one
            t = self.texts[rng.randrange(len(self.texts))]
            p += "\n\n" + t[: nchars - len(p)]
        return p
