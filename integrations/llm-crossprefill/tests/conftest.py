"""The main suite's fixtures (tiny drafts saved to disk, offline targets, a private score
cache) for the plugin's tests, and this checkout's plugin module on the path.

This folder is a package, so that pytest imports this file as `tests.conftest`: the main
suite's modules import their helpers from the module named `conftest`, which must stay
the main conftest when both folders run. For the same reason the main conftest is loaded
here under a name of its own; its session fixtures are then set up once more for this
folder (a few seconds of tiny models).
"""

import importlib.util
import sys
from pathlib import Path

DISTRIBUTION = Path(__file__).resolve().parents[1]
MAIN_TESTS = DISTRIBUTION.parents[1] / "tests"
# the plugin module as this checkout has it, and the modules the main conftest imports
sys.path[:0] = [str(DISTRIBUTION), str(MAIN_TESTS)]

_spec = importlib.util.spec_from_file_location("crossprefill_main_conftest",
                                               MAIN_TESTS / "conftest.py")
main_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(main_conftest)

offline_tokenizers = main_conftest.offline_tokenizers
draft_dirs = main_conftest.draft_dirs
llama_dir = main_conftest.llama_dir
target_dir = main_conftest.target_dir
target = main_conftest.target
