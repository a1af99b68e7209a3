"""Shared test fixtures: tiny random drafts of several families, offline targets.

Nothing here downloads: drafts are random transformers models saved with
`save_pretrained` and loaded back through `load_draft`, the code path `--draft PATH`
takes. Their tokenizer is a byte-level BPE trained on the spot. Real tokenizer files
from ../shared/fixtures (see its SOURCES.md) are used when present; tests that need
them skip cleanly when they are absent. tiktoken is pointed at a private cache that
holds the fixture rank files (or nothing), and its downloader is disabled.
"""

import hashlib
import os
import shutil
import socket
from pathlib import Path

import property_settings  # noqa: F401  (loads the Hypothesis profile before the tests)
import pytest

# Tiny models gain nothing from threads, and oversubscribed cores slow them 20x.
os.environ["OMP_NUM_THREADS"] = "1"
import torch  # noqa: E402  (after the thread setting, which torch reads at import)

torch.set_num_threads(1)

FIXTURES = Path(os.environ.get("CROSSPREFILL_FIXTURES",
                               Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
TIKTOKEN_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

CORPUS = """\
The harbour master counted the boats that came in before the storm. Each captain
reported the weight of the catch, the names of the crew and the state of the nets.
def parse_config(path):
    with open(path) as handle:
        return yaml.safe_load(handle)
Meanwhile the library opened a new reading room for maps, letters and old ledgers.
Prices rose in the spring; the council met twice and agreed on a budget of 4,200.
class Inventory:
    def __init__(self, items):
        self.items = list(items)
    def total(self):
        return sum(item.price for item in self.items)
"""


def fixture_path(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"fixture {'/'.join(parts)} is not present")
    return path


@pytest.fixture(scope="session", autouse=True)
def offline_tokenizers(tmp_path_factory):
    """tiktoken reads only a private cache; Hugging Face never goes online; scores are
    cached in a private folder, never the user's."""
    import tiktoken.load

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, url in TIKTOKEN_URLS.items():
        source = FIXTURES / "tiktoken" / f"{name}.tiktoken"
        if source.exists():
            shutil.copy(source, cache / hashlib.sha1(url.encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["CROSSPREFILL_CACHE_DIR"] = str(tmp_path_factory.mktemp("score-cache"))

    def no_download(blobpath):
        raise ConnectionError(f"tests never download ({blobpath})")

    original = tiktoken.load.read_file
    tiktoken.load.read_file = no_download
    yield
    tiktoken.load.read_file = original


def has_tiktoken_fixture(name: str) -> bool:
    return (FIXTURES / "tiktoken" / f"{name}.tiktoken").exists()


def train_tokenizer(vocab_size: int):
    """A byte-level BPE fast tokenizer with BOS/EOS, trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([CORPUS] * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>",
                                   eos_token="<eos>")


def model_config(family: str, vocab_size: int, context: int = 512):
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen3Config

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=1)
    if family == "llama":
        return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=context, **common)
    if family == "qwen3":
        return Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                           max_position_embeddings=context, **common)
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=context, **common)
    if family == "gemma3":
        return Gemma3TextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                max_position_embeddings=context, sliding_window=64,
                                layer_types=["sliding_attention", "full_attention"], **common)
    raise ValueError(family)


def save_tiny_draft(folder: Path, family: str, context: int = 512) -> Path:
    from transformers import AutoModelForCausalLM

    tokenizer = train_tokenizer(vocab_size=320)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(family, len(tokenizer), context))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def draft_dirs(tmp_path_factory) -> dict[str, Path]:
    return {family: save_tiny_draft(tmp_path_factory.mktemp(f"draft-{family}"), family)
            for family in ("llama", "qwen3", "gpt2")}


@pytest.fixture(scope="session")
def llama_dir(draft_dirs) -> Path:
    return draft_dirs["llama"]


@pytest.fixture(scope="session")
def llama_draft(llama_dir):
    from crossprefill_cli.models.draft import load_draft

    return load_draft(str(llama_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory) -> Path:
    """A target tokenizer of another family than the drafts (different vocabulary)."""
    folder = tmp_path_factory.mktemp("target-tokenizer")
    train_tokenizer(vocab_size=290).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def target(target_dir):
    from crossprefill_cli.models.target import load_target

    return load_target(str(target_dir))


def long_text(paragraphs: int = 40, needle: str | None = None, at: int = 20) -> str:
    """Prose of many distinct paragraphs (optionally with one needle paragraph)."""
    words = ("river stone lantern orchard copper meadow signal harbour winter ledger "
             "candle market bridge garden thunder violet anchor basket quarry falcon").split()
    lines = ["Field notes from the survey"]
    for index in range(paragraphs):
        if needle is not None and index == at:
            lines.append(needle)
        picked = [words[(index * 7 + k * 3) % len(words)] for k in range(12)]
        lines.append(f"Entry {index}: the {picked[0]} near the {picked[1]} was {picked[2]}, "
                     f"and {' '.join(picked[3:])} were noted on day {index * 3 + 1}.")
    lines.append("Please summarise the notes above in three sentences.")
    return "\n".join(lines) + "\n"


@pytest.fixture
def unreachable_hub(monkeypatch):
    """No route to the Hugging Face hub: name resolution fails at once."""
    from huggingface_hub import constants

    from crossprefill_cli.models import loading

    def refuse(address, timeout):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in loading.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def upstream():
    """A fake LLM API (tests/servers.py) for one test module: it and its `.../v1` URL."""
    from servers import fake_upstream

    with fake_upstream() as running:
        yield running
