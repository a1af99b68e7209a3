"""Loading by hub id: the local cache first, and no waiting on an unreachable hub."""

import socket
import time

import pytest
from huggingface_hub import constants

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models import loading
from crossprefill_cli.pipeline.draft_source import DraftSource


class RecordingLoader:
    """A stand-in `from_pretrained` whose cache holds only the ids it is given."""

    def __init__(self, cached: set[str]):
        self.cached, self.calls = cached, []

    def __call__(self, location, **options):
        self.calls.append(options)
        if options.get("local_files_only") and location not in self.cached:
            raise OSError(f"{location} is not in the cache")
        return f"loaded {location}"


def test_a_cached_hub_id_loads_without_the_network(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", pytest.fail)
    loader = RecordingLoader(cached={"org/model"})
    assert loading.load_pretrained(loader, "org/model", what="model", dtype="x") == "loaded org/model"
    assert loader.calls == [{"local_files_only": True, "dtype": "x"}]


def test_an_uncached_hub_id_is_fetched_when_the_hub_answers(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: socket.socket())
    loader = RecordingLoader(cached=set())
    assert loading.load_pretrained(loader, "org/model", what="model") == "loaded org/model"
    assert loader.calls == [{"local_files_only": True}, {}]


def test_an_unreachable_hub_fails_at_once_with_one_clear_line(unreachable_hub):
    loader = RecordingLoader(cached=set())
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache and "
                                             "huggingface.co cannot be reached"):
        loading.load_pretrained(loader, "org/model", what="model")
    assert loader.calls == [{"local_files_only": True}]


def test_offline_mode_is_named_in_the_error(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        loading.load_pretrained(RecordingLoader(cached=set()), "org/model", what="model")


def test_a_local_directory_is_loaded_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "create_connection", pytest.fail)
    loader = RecordingLoader(cached=set())
    assert loading.load_pretrained(loader, str(tmp_path), what="model") == f"loaded {tmp_path}"
    assert loader.calls == [{}]


def test_the_draft_tokenizer_of_an_unreachable_hub_id_is_a_model_error(unreachable_hub):
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match="cannot load draft nobody/no-such-draft: .*"
                                             "cannot be reached"):
        DraftSource("nobody/no-such-draft", device="cpu", dtype="auto").tokenizer()
    assert time.perf_counter() - started < 10  # not the hub client's ~50 s of retries
