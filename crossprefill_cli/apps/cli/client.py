"""The thin client of `crossprefill serve`: one request, the server's report back.

`compress`, `inspect` and `estimate` with `--server URL` (or `CROSSPREFILL_SERVER`)
send the request here and print exactly what local mode prints, from the report the
server answers with; the client process never imports torch or transformers. It talks
HTTP with the standard library's urllib: one POST per run, and importing httpx alone
took 0.17 s here, a third of the start-up budget of a warm client. A key for a server
that needs one comes from `CROSSPREFILL_API_KEY` (never from the command line, where
other users of the machine could read it).

A server's error (`{"error": {"type", "message"}}`) becomes the `CrossprefillError` the
same failure raises locally, so the exit status matches: usage and budget errors 2,
everything else 1.
"""

import json
import os
import urllib.error
import urllib.request

from crossprefill_cli.errors import CrossprefillError, ModelLoadError, UsageError, error_class
from crossprefill_cli.settings import FLAGS_HEADER

TIMEOUT_SECONDS = 600
# the server's own request-level types, beside the error classes' (`errors.error_class`)
# (an unknown profile is a usage error, as it is locally)
REQUEST_ERRORS = {"bad_request": UsageError, "unknown_profile": UsageError,
                  "not_found": ModelLoadError}


def request(server: str, path: str, body: dict) -> dict:
    """POST `body` to the server, return its JSON answer or raise the matching error."""
    url = server.rstrip("/") + path
    headers = {"Content-Type": "application/json", FLAGS_HEADER: "flags"}
    key = os.environ.get("CROSSPREFILL_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers),
                                    timeout=TIMEOUT_SECONDS) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise _server_error(error) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CrossprefillError(f"cannot reach the server at {server} ({reason})") from None
    except ValueError:
        raise CrossprefillError(f"the server at {server} answered something that is not "
                                "JSON") from None


def _server_error(error: urllib.error.HTTPError) -> CrossprefillError:
    try:
        details = json.loads(error.read())["error"]
        kind, message = details["type"], details["message"]
    except (ValueError, KeyError, TypeError):
        kind, message = "", f"the server answered {error.code} {error.reason}"
    return REQUEST_ERRORS.get(kind, error_class(kind))(message)
