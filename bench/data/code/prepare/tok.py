import hashlib, os, shutil
from pathlib import Path
FIX = Path("/work/shared/fixtures/tiktoken/o200k_base.tiktoken")
URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
cache = Path("/tmp/cqprep/tkcache"); cache.mkdir(exist_ok=True)
dst = cache / hashlib.sha1(URL.encode()).hexdigest()
if not dst.exists(): shutil.copy(FIX, dst)
os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
import tiktoken
ENC = tiktoken.get_encoding("o200k_base")
def count(s): return len(ENC.encode(s, disallowed_special=()))
