"""The proxy's expand tool against a scripted model: a fake upstream whose model
`seeker` answers with the line holding NEEDLE once it can see it, and otherwise calls
`crossprefill_expand` on the next gap marker (tests/servers.py `seeker_step`).

Each test checks what the client saw (the answer, never the tool) and what the upstream
received (the tool declared, the omitted text given back exactly as it was)."""

import json

import httpx
import openai
import pytest
from conftest import long_text
from servers import EXPAND_TOOL, NEEDLE, FakeUpstream, proxy

NEEDLE_LINE = f"The vault code is {NEEDLE}-4417, kept by the harbour master."
DOCUMENT = long_text(160, needle=NEEDLE_LINE, at=97)
QUESTION = "Summarise the survey notes in one line."
LOOKUP_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"key": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def expanding(upstream, llama_dir, target_dir):
    with proxy(upstream[1], llama_dir, target_dir, models="seeker*", keep_rate=0.1,
               expandable=True) as running:
        yield running


def openai_request(model: str = "seeker", **extra) -> dict:
    return {"model": model, "messages": [
        {"role": "system", "content": "Answer from the tool's output."},
        {"role": "user", "content": "Read the survey notes."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_read", "type": "function",
            "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_read", "content": DOCUMENT},
        {"role": "user", "content": QUESTION}], **extra}


def anthropic_request(**extra) -> dict:
    return {"model": "seeker", "max_tokens": 100, "system": "Answer from the tool's output.",
            "messages": [
                {"role": "user", "content": "Read the survey notes."},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_read", "name": "read", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_read", "content": DOCUMENT},
                    {"type": "text", "text": QUESTION}]}], **extra}


def since(fake: FakeUpstream, count: int) -> list[dict]:
    return [received.json() for received in fake.received[count:]]


def check_rounds(bodies: list[dict], application, dialect: str) -> None:
    """The first round hid the needle and declared the tool; every later round carries
    the exact text of the references asked for."""
    conversation = "input" if dialect == "responses" else "messages"
    first = json.dumps(bodies[0][conversation])
    assert NEEDLE not in first and "ref " in first
    names = [tool.get("name") or tool["function"]["name"] for tool in bodies[0]["tools"]]
    assert EXPAND_TOOL in names
    store = application.state.engine.references
    for previous, body in zip(bodies, bodies[1:]):
        if dialect == "responses":
            seen = len(previous["input"])
            earlier, added = body["input"][:seen], body["input"][seen:]
            assert earlier == previous["input"]
            call = next(item for item in added if item.get("name") == EXPAND_TOOL)
            assert added[-1] == {"type": "function_call_output", "call_id": call["call_id"],
                                 "output": store.expand(json.loads(call["arguments"])["ref"])}
            continue
        asked, answered = body["messages"][-2], body["messages"][-1]
        if dialect == "openai":
            ref = json.loads(asked["tool_calls"][0]["function"]["arguments"])["ref"]
            assert answered == {"role": "tool", "tool_call_id": asked["tool_calls"][0]["id"],
                                "content": store.expand(ref)}
        else:
            use = next(b for b in asked["content"] if b["type"] == "tool_use")
            assert answered["content"] == [{"type": "tool_result", "tool_use_id": use["id"],
                                            "content": store.expand(use["input"]["ref"])}]
        assert body["messages"][:-2] == previous["messages"]
    assert NEEDLE in json.dumps(bodies[-1][conversation])


def _only_text(answer: dict, dialect: str) -> str:
    """The text of a non-streamed answer that must call no tool."""
    if dialect == "responses":  # each earlier round's message shown, as a stream shows it
        assert {item["type"] for item in answer["output"]} == {"message"}
        texts = [item["content"][0]["text"] for item in answer["output"]]
        assert texts[:-1] == ["Let me look."] * (len(texts) - 1)
        return texts[-1]
    message = answer["choices"][0]["message"]
    assert "tool_calls" not in message
    return message["content"]


@pytest.mark.parametrize("dialect", ["openai", "responses"])
def test_the_model_reads_what_was_compressed_away(upstream, expanding, dialect):
    fake, _ = upstream
    url, application = expanding
    count = len(fake.received)
    path, request = (("/v1/responses", responses_request()) if dialect == "responses"
                     else ("/v1/chat/completions", openai_request()))
    answer = httpx.post(url + path, json=request, timeout=120)
    assert answer.status_code == 200, answer.text
    assert _only_text(answer.json(), dialect) == NEEDLE_LINE
    bodies = since(fake, count)
    assert int(answer.headers["x-crossprefill-expansions"]) == len(bodies) - 1 >= 1
    if dialect == "responses":  # every round said something: all of it is shown
        assert len(answer.json()["output"]) == len(bodies)
    assert answer.headers["x-crossprefill"] == "compressed"
    assert bodies[0].get("instructions") == request.get("instructions")  # never compressed
    check_rounds(bodies, application, dialect)


def test_a_stream_hides_the_tool_and_goes_on(upstream, expanding):
    fake, _ = upstream
    url, application = expanding
    count = len(fake.received)
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    chunks = list(client.chat.completions.create(**openai_request(), stream=True))
    assert all(not chunk.choices or not chunk.choices[0].delta.tool_calls for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == NEEDLE_LINE
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    check_rounds(since(fake, count), application, "openai")


def test_the_clients_own_tools_stay_its_own(upstream, expanding):
    fake, _ = upstream
    url, _ = expanding
    count = len(fake.received)
    answer = httpx.post(url + "/v1/chat/completions", timeout=120,
                        json=openai_request("seeker-both", tools=[LOOKUP_TOOL]))
    message = answer.json()["choices"][0]["message"]
    assert [call["function"]["name"] for call in message["tool_calls"]] == ["lookup"]
    sent = since(fake, count)
    assert len(sent) == 1  # the client answers its tool; the proxy does not go on
    assert sent[0]["tools"][0] == LOOKUP_TOOL and len(sent[0]["tools"]) == 2
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    chunks = list(client.chat.completions.create(**openai_request("seeker-both",
                                                                  tools=[LOOKUP_TOOL]),
                                                 stream=True))
    calls = [call for chunk in chunks if chunk.choices
             for call in chunk.choices[0].delta.tool_calls or []]
    assert {call.index for call in calls} == {0}
    assert [call.function.name for call in calls if call.function.name] == ["lookup"]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_clients_get_the_same(upstream, expanding, stream):
    fake, _ = upstream
    url, application = expanding
    count = len(fake.received)
    with httpx.stream("POST", url + "/v1/messages", json=anthropic_request(stream=stream),
                      headers={"anthropic-version": "2023-06-01"}, timeout=120) as answer:
        data = answer.read().decode()
    assert answer.status_code == 200, data
    if stream:
        events = [json.loads(line[5:]) for line in data.splitlines() if line.startswith("data:")]
        kinds = [event["type"] for event in events]
        assert kinds.count("message_start") == 1 and kinds[-1] == "message_stop"
        starts = [e for e in events if e["type"] == "content_block_start"]
        assert [e["index"] for e in starts] == list(range(len(starts)))
        assert all(e["content_block"]["type"] == "text" for e in starts)
        text = "".join(e["delta"].get("text", "") for e in events
                       if e["type"] == "content_block_delta")
        stops = [e["delta"]["stop_reason"] for e in events if e["type"] == "message_delta"]
        assert stops == ["end_turn"]
    else:
        content = json.loads(data)["content"]
        assert all(block["type"] == "text" for block in content)
        text = "".join(block["text"] for block in content)
    assert text.endswith(NEEDLE_LINE)
    check_rounds(since(fake, count), application, "anthropic")


def test_without_expandable_nothing_is_declared(upstream, llama_dir, target_dir):
    fake, url_upstream = upstream
    with proxy(url_upstream, llama_dir, target_dir, models="seeker*",
               keep_rate=0.1) as (url, _):
        count = len(fake.received)
        answer = httpx.post(url + "/v1/chat/completions", json=openai_request(), timeout=120)
    assert answer.json()["choices"][0]["message"]["content"] == "not found"
    body = since(fake, count)[0]
    assert "tools" not in body and "ref " not in json.dumps(body)
    assert answer.headers["x-crossprefill"] == "compressed"


def responses_request(model: str = "seeker", **extra) -> dict:
    """Unstored (`store: false`), as clients that send the whole conversation make them."""
    return {"model": model, "store": False, "instructions": "Answer from the tool's output.",
            "input": [
                {"role": "user", "content": "Read the survey notes."},
                {"type": "function_call", "call_id": "call_read", "name": "read",
                 "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_read", "output": DOCUMENT},
                {"role": "user", "content": QUESTION}], **extra}


def test_a_responses_stream_hides_the_tool_and_goes_on(upstream, expanding):
    fake, _ = upstream
    url, application = expanding
    count = len(fake.received)
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    # the SDK's stream helper rebuilds the response from the events, by output_index
    with client.responses.stream(**responses_request()) as stream:
        events = list(stream)
        rebuilt = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    added = [event for event in events if event.type == "response.output_item.added"]
    assert [event.output_index for event in added] == list(range(len(added)))
    assert {event.item.type for event in added} == {"message"}
    assert not any("function_call" in kind for kind in kinds)
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text.strip().endswith(NEEDLE_LINE)
    final = events[-1].response
    assert {item.type for item in final.output} == {"message"} and len(final.output) == len(added)
    assert final.output_text.endswith(NEEDLE_LINE) and rebuilt.output_text == final.output_text
    bodies = since(fake, count)
    assert len(bodies) >= 2
    check_rounds(bodies, application, "responses")


def test_a_responses_answer_keeps_the_clients_own_calls(upstream, expanding):
    fake, _ = upstream
    url, _ = expanding
    count = len(fake.received)
    lookup = {"type": "function", "name": "lookup",
              "parameters": LOOKUP_TOOL["function"]["parameters"]}
    answer = httpx.post(url + "/v1/responses", timeout=120,
                        json=responses_request("seeker-both", tools=[lookup]))
    calls = [item for item in answer.json()["output"] if item["type"] == "function_call"]
    assert [call["name"] for call in calls] == ["lookup"]
    sent = since(fake, count)
    assert len(sent) == 1 and sent[0]["tools"][0] == lookup and len(sent[0]["tools"]) == 2


def test_a_non_streamed_answer_shows_every_round_and_counts_every_rounds_usage():
    from crossprefill_cli.apps.http.expansion import merged

    ours = {"id": "call_0", "type": "function",
            "function": {"name": EXPAND_TOOL, "arguments": '{"ref": "ab:1-2"}'}}
    usage = {"prompt_tokens": 90, "completion_tokens": 10, "total_tokens": 100,
             "prompt_tokens_details": {"cached_tokens": 64}}
    first = {"id": "chatcmpl-1", "usage": usage, "choices": [{"message": {
        "role": "assistant", "content": "Let me look. ", "tool_calls": [ours]}}]}
    last = {"id": "chatcmpl-2", "usage": {**usage, "prompt_tokens_details": {"cached_tokens": 1}},
            "choices": [{"message": {"role": "assistant", "content": "Found it."}}]}
    answer = merged([first], last, "openai")
    assert answer["choices"][0]["message"] == {"role": "assistant",
                                               "content": "Let me look. Found it."}
    assert answer["usage"] == {"prompt_tokens": 180, "completion_tokens": 20,
                               "total_tokens": 200, "prompt_tokens_details": {"cached_tokens": 65}}
    assert answer["id"] == "chatcmpl-2" and last["usage"]["prompt_tokens"] == 90

    use = {"type": "tool_use", "id": "toolu_0", "name": EXPAND_TOOL, "input": {"ref": "ab:1-2"}}
    thinking = {"type": "thinking", "thinking": "The code is omitted.", "signature": "s"}
    anthropic = merged([{"content": [thinking, {"type": "text", "text": "Let me look."}, use],
                         "usage": {"input_tokens": 5, "output_tokens": 2}}],
                       {"content": [{"type": "text", "text": "Found it."}],
                        "usage": {"input_tokens": 9, "output_tokens": 3, "service_tier": "x"}},
                       "anthropic")
    assert [block.get("text") for block in anthropic["content"]] == [
        None, "Let me look.", "Found it."]
    assert anthropic["usage"] == {"input_tokens": 14, "output_tokens": 5, "service_tier": "x"}

    call = {"type": "function_call", "call_id": "call_0", "name": EXPAND_TOOL,
            "arguments": '{"ref": "ab:1-2"}'}
    said = {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look."}]}
    found = {**said, "content": [{"type": "output_text", "text": "Found it."}]}
    responses = merged([{"output": [said, call], "usage": {"input_tokens": 1}}],
                       {"output": [found], "usage": None}, "responses")
    assert responses["output"] == [said, found] and responses["usage"] is None


def test_a_responses_round_calling_both_tools_ends_with_the_clients_call_alone():
    """The filter itself, on one round whose model calls the expand tool and the client's
    `lookup`: the proxy's item and its events vanish, the client's call is renumbered to
    the first output item, and the round ends the client's stream."""
    from crossprefill_cli.apps.http.expansion_streams import ResponsesStream

    ours = {"type": "function_call", "id": "fc_0", "call_id": "call_0",
            "name": EXPAND_TOOL, "arguments": '{"ref": "ab:1-2"}'}
    theirs = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
              "arguments": "{}"}
    response = {"id": "resp_7", "status": "completed", "output": [ours, theirs]}
    events = [("response.created", {"response": {**response, "output": []}}),
              ("response.output_item.added", {"output_index": 0, "item": ours}),
              ("response.function_call_arguments.delta", {"output_index": 0, "delta": "{"}),
              ("response.output_item.done", {"output_index": 0, "item": ours}),
              ("response.output_item.added", {"output_index": 1, "item": theirs}),
              ("response.output_item.done", {"output_index": 1, "item": theirs}),
              ("response.completed", {"response": response})]
    emitted: list[bytes] = []
    stream = ResponsesStream()
    handle = stream.round(emitted.append)
    going = [handle(name, json.dumps({"type": name, "sequence_number": number, **data}))
             for number, (name, data) in enumerate(events)]
    assert going == [True] * 6 + [False] and not stream.state.continues
    relayed = [json.loads(piece.decode().split("data: ", 1)[1]) for piece in emitted]
    assert [event["type"] for event in relayed] == [
        "response.created", "response.output_item.added", "response.output_item.done",
        "response.completed"]
    assert [event["sequence_number"] for event in relayed] == [0, 1, 2, 3]
    assert [event.get("output_index") for event in relayed[1:3]] == [0, 0]
    assert relayed[-1]["response"]["output"] == [theirs]
    assert EXPAND_TOOL not in json.dumps(relayed)


def test_a_stored_responses_request_keeps_bare_markers(upstream, expanding):
    """A response the API stores can be continued by its id, which a stream with the
    proxy's rounds would name wrongly: no tool there (`expansion.offered`)."""
    fake, _ = upstream
    url, _ = expanding
    body = responses_request()
    del body["store"]
    answer = httpx.post(url + "/v1/responses", json=body, timeout=120)
    assert answer.status_code == 200 and answer.headers["x-crossprefill"] == "compressed"
    sent = fake.received[-1].json()
    assert sent["input"][3] == body["input"][3] and sent["instructions"] == body["instructions"]
    output = sent["input"][2]["output"]
    assert len(output) < len(DOCUMENT) and "[...]" in output and "ref " not in output
    assert "tools" not in sent


def test_the_anthropic_sdk_streams_the_answer_without_the_tool(upstream, expanding):
    anthropic = pytest.importorskip("anthropic")
    fake, _ = upstream
    url, application = expanding
    count = len(fake.received)
    client = anthropic.Anthropic(base_url=url, api_key="sk-ant-sdk", max_retries=0)
    request = anthropic_request()
    with client.messages.stream(**request) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed.endswith(NEEDLE_LINE) and final.stop_reason == "end_turn"
    assert all(block.type == "text" for block in final.content)
    check_rounds(since(fake, count), application, "anthropic")


def _filtered(dialect: str, rounds: list[list[tuple[str | None, dict | str]]]) -> list[dict]:
    """The events (SSE data, parsed) a stream filter lets through over `rounds`."""
    from crossprefill_cli.apps.http.expansion_streams import stream_filter

    emitted: list[bytes] = []
    stream = stream_filter(dialect)
    for number, events in enumerate(rounds):
        handle = stream.round(emitted.append)
        for name, data in events:
            handle(name, data if isinstance(data, str) else json.dumps(data))
        assert stream.state.continues == (number < len(rounds) - 1)
    return [json.loads(piece.decode().split("data: ", 1)[1]) for piece in emitted
            if b"[DONE]" not in piece]


def test_a_stream_counts_the_usage_of_every_round():
    call = {"index": 0, "id": "call_0", "type": "function",
            "function": {"name": EXPAND_TOOL, "arguments": '{"ref": "ab:1-2"}'}}

    def chunk(delta=None, finish=None, usage=None):
        choices = [] if delta is None else [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]
        return None, {"choices": choices, **({"usage": usage} if usage else {})}

    relayed = _filtered("openai", [
        [chunk({"role": "assistant"}), chunk({"tool_calls": [call]}), chunk({}, "tool_calls"),
         chunk(usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
         (None, "[DONE]")],
        [chunk({"role": "assistant"}), chunk({"content": "Found."}), chunk({}, "stop"),
         chunk(usage={"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}),
         (None, "[DONE]")]])
    assert [c["usage"] for c in relayed if "usage" in c] == [
        {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}]

    use = {"type": "tool_use", "id": "toolu_0", "name": EXPAND_TOOL, "input": {}}

    def anthropic_round(block, delta, stop, started, ended):
        return [("message_start", {"type": "message_start", "message": {"usage": started}}),
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": block}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                   "usage": ended}),
                ("message_stop", {"type": "message_stop"})]

    relayed = _filtered("anthropic", [
        anthropic_round(use, {"type": "input_json_delta", "partial_json": '{"ref": "ab:1-2"}'},
                        "tool_use", {"input_tokens": 10, "output_tokens": 1}, {"output_tokens": 4}),
        anthropic_round({"type": "text", "text": ""}, {"type": "text_delta", "text": "Found."},
                        "end_turn", {"input_tokens": 30, "output_tokens": 1}, {"output_tokens": 6})])
    deltas = [event for event in relayed if event["type"] == "message_delta"]
    assert [event["usage"] for event in deltas] == [{"input_tokens": 40, "output_tokens": 10}]

    ours = {"type": "function_call", "id": "fc_0", "call_id": "call_0", "name": EXPAND_TOOL,
            "arguments": '{"ref": "ab:1-2"}'}
    said = {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Found."}]}

    def responses_round(item, usage):
        response = {"id": "resp_1", "status": "completed", "output": [item], "usage": usage}
        return [(kind, {"type": kind, **data}) for kind, data in (
            ("response.created", {"response": {**response, "output": [], "usage": None}}),
            ("response.output_item.added", {"output_index": 0, "item": item}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
            ("response.completed", {"response": response}))]

    relayed = _filtered("responses", [
        responses_round(ours, {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
                               "input_tokens_details": {"cached_tokens": 8}}),
        responses_round(said, {"input_tokens": 30, "output_tokens": 3, "total_tokens": 33,
                               "input_tokens_details": {"cached_tokens": 0}})])
    assert relayed[-1]["response"]["usage"] == {
        "input_tokens": 40, "output_tokens": 5, "total_tokens": 45,
        "input_tokens_details": {"cached_tokens": 8}}
    assert relayed[-1]["response"]["output"] == [said]
