import hashlib
import json

import pytest
import tiktoken
from conftest import FIXTURES, fixture_path, has_tiktoken_fixture

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.loading import looks_like_path
from crossprefill_cli.models.target import load_target

needs_o200k = pytest.mark.skipif(not has_tiktoken_fixture("o200k_base"),
                                 reason="o200k_base fixture absent")


@needs_o200k
def test_tiktoken_encoding_by_name_counts_like_tiktoken():
    target = load_target("o200k_base")
    assert target.name == "o200k_base"
    assert target.count("Hello world") == 2  # [13225, 2375] per SOURCES.md
    assert target.count_batch(["Hello world", "", "<|endoftext|>"]) == [
        2, 0, len(tiktoken.get_encoding("o200k_base").encode_ordinary("<|endoftext|>"))]


@needs_o200k
def test_openai_model_names_resolve_to_their_encoding():
    assert load_target("gpt-4o").name == "gpt-4o (o200k_base)"


@pytest.mark.skipif(not has_tiktoken_fixture("cl100k_base"), reason="cl100k_base fixture absent")
def test_cl100k_counts():
    assert load_target("cl100k_base").count("Hello world") == 2


@pytest.mark.parametrize("family", ["qwen2.5", "llama3", "deepseek-v3"])
def test_hugging_face_tokenizer_directories_match_reference_encodings(family):
    folder = fixture_path(family)
    references = json.loads((FIXTURES / "reference_encodings.json").read_text())[family]
    target = load_target(str(folder))
    for case in references:
        ids = case["ids"]
        if case.get("add_special_tokens"):  # the reference includes BOS (and maybe EOS)
            ids = [i for i in ids if i not in (0, 1, 128000, 128001)]
        assert target.count(case["text"]) == len(ids), case["text"]


def test_unknown_local_target_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_target(str(tmp_path / "absent"))


def test_unloadable_tiktoken_encoding_is_a_clear_error(monkeypatch, tmp_path):
    def fail(name):
        raise ConnectionError("offline")

    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))  # no kept copy to read
    monkeypatch.setattr(tiktoken, "get_encoding", fail)
    with pytest.raises(ModelLoadError, match="TIKTOKEN_CACHE_DIR"):
        load_target("o200k_base")


def test_only_path_like_names_are_treated_as_local():
    assert looks_like_path("./model") and looks_like_path("/abs/model")
    assert looks_like_path("~/models/x")
    assert not looks_like_path("Qwen/Qwen3-0.6B")


def test_the_offline_hint_names_the_file_tiktoken_looks_for(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: p50k_base is not there
    url = "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken"
    with pytest.raises(ModelLoadError) as error:
        load_target("p50k_edit")  # reads p50k_base's rank file
    assert url in str(error.value) and hashlib.sha1(url.encode()).hexdigest() in str(error.value)


@needs_o200k
def test_a_kept_copy_of_the_tables_counts_like_tiktoken(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))
    texts = ["Hello world", "naïve café — 東京 🚀", "def f(x):\n    return x ** 2\n" * 3]
    expected = [len(tiktoken.get_encoding("o200k_base").encode_ordinary(t)) for t in texts]
    first = load_target("o200k_base")  # builds with tiktoken and keeps a copy
    [copy] = (tmp_path / "tiktoken").iterdir()
    loads = []
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: loads.append(name))
    second = load_target("o200k_base")  # from the copy: tiktoken's loader is not called
    assert first.count_batch(texts) == second.count_batch(texts) == expected
    assert loads == []
    copy.write_bytes(b"\x00garbled")
    monkeypatch.undo()
    monkeypatch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path))
    assert load_target("o200k_base").count_batch(texts) == expected  # rebuilt, not trusted
    assert copy.read_bytes() != b"\x00garbled"
