"""Which texts of a chat request the proxy may compress, and how a model finds its target."""

import copy

import pytest

from crossprefill_cli.apps.http.chat_requests import (ANTHROPIC, OPENAI, RESPONSES, chat_texts,
                                                     replace)
from crossprefill_cli.apps.http.compressor import target_name
from crossprefill_cli.apps.http.proxy import parse_target_map
from crossprefill_cli.errors import UsageError


def openai_body():
    return {"model": "gpt-4o", "temperature": 0, "messages": [
        {"role": "system", "content": "rules"},
        {"role": "developer", "content": [{"type": "text", "text": "more rules"}]},
        {"role": "user", "content": [{"type": "text", "text": "a document"},
                                     {"type": "image_url", "image_url": {"url": "data:,"}}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "tool", "tool_call_id": "c", "content": "a tool result"},
        "not a message", {"content": "no role"},
        {"role": "user", "content": "the question?"}]}


def candidate_texts(chat):
    return [chat.texts[i].text for i in chat.candidates]


def test_openai_candidates_are_tool_results_and_earlier_user_texts():
    chat = chat_texts(openai_body(), OPENAI)
    assert [t.text for t in chat.texts] == ["rules", "more rules", "a document", "an answer",
                                            "a tool result", "the question?"]
    assert candidate_texts(chat) == ["a document", "a tool result"]
    assert chat.query == "the question?"
    assert candidate_texts(chat_texts(openai_body(), OPENAI, ("assistant",))) == ["an answer"]
    # system and developer messages never are, even when asked for
    assert candidate_texts(chat_texts(openai_body(), OPENAI, ("system", "developer"))) == []


def test_responses_candidates_are_tool_outputs_and_earlier_user_texts():
    body = {"model": "gpt-5-codex", "instructions": "rules", "input": [
        {"type": "message", "role": "developer", "content": [
            {"type": "input_text", "text": "more rules"}]},
        {"role": "user", "content": "a document"},
        {"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "a tool result"},
        {"type": "custom_tool_call_output", "call_id": "d", "output": [
            {"type": "input_text", "text": "a patch result"}, {"type": "input_image"}]},
        {"type": "reasoning", "summary": []}, "not an item",
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "the question?"}]}]}
    chat = chat_texts(body, RESPONSES)
    assert [t.text for t in chat.texts] == ["more rules", "a document", "a tool result",
                                            "a patch result", "the question?"]
    assert candidate_texts(chat) == ["a document", "a tool result", "a patch result"]
    assert chat.query == "the question?"
    changed = copy.deepcopy(body)
    for index in chat.candidates:
        replace(changed, chat.texts[index].path, "short")
    assert changed["input"][3]["output"] == "short"
    assert changed["input"][4]["output"][0]["text"] == "short"
    assert changed["input"][7] == body["input"][7] and changed["instructions"] == "rules"
    alone = chat_texts({"input": "just a question?"}, RESPONSES)
    assert alone.candidates == () and alone.query == "just a question?"
    assert chat_texts({"input": 3}, RESPONSES) is None


def test_the_last_user_turn_is_its_question_when_it_is_long():
    body = {"messages": [{"role": "user", "content": "Report.\n" + "filler line\n" * 400
                          + "Which colour was the door?"}]}
    chat = chat_texts(body, OPENAI)
    assert chat.candidates == () and chat.query == "Which colour was the door?"
    assert chat_texts({"messages": [{"role": "tool", "content": "x"}]}, OPENAI).query is None


@pytest.mark.parametrize("body", [None, [], {"prompt": "x"}, {"messages": "x"}])
def test_a_body_without_a_message_list_has_no_texts(body):
    assert chat_texts(body, OPENAI) is None


def test_anthropic_tool_results_are_tool_texts_and_the_human_turn_is_the_query():
    body = {"system": [{"type": "text", "text": "rules"}], "messages": [
        {"role": "user", "content": "the question?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "result one"},
            {"type": "tool_result", "tool_use_id": "u",
             "content": [{"type": "text", "text": "result two"}, {"type": "image"}]}]}]}
    chat = chat_texts(body, ANTHROPIC)
    assert [(t.role, t.text) for t in chat.texts] == [
        ("system", "rules"), ("user", "the question?"), ("tool", "result one"),
        ("tool", "result two")]
    assert candidate_texts(chat) == ["result one", "result two"] and chat.query == "the question?"
    # in OpenAI's dialect a tool_result block is not text at all
    assert [t.text for t in chat_texts(body, OPENAI).texts] == ["the question?"]


def test_replace_changes_one_text_in_place_and_nothing_else():
    body = openai_body()
    chat = chat_texts(body, OPENAI)
    before = copy.deepcopy(body)
    for index in chat.candidates:
        replace(body, chat.texts[index].path, "short")
    assert body["messages"][2]["content"][0]["text"] == body["messages"][4]["content"] == "short"
    body["messages"][2]["content"][0]["text"] = "a document"
    body["messages"][4]["content"] = "a tool result"
    assert body == before


def test_a_model_finds_its_target_by_pattern_then_by_tiktoken_name():
    mapping = parse_target_map(["llama-3*=meta-llama/Llama-3.1-8B", "claude*=o200k_base"])
    assert target_name("llama-3.1-70b", mapping, "o200k_base") == "meta-llama/Llama-3.1-8B"
    assert target_name("claude-sonnet-4", mapping, "cl100k_base") == "o200k_base"
    assert target_name("gpt-4o-mini", mapping, "cl100k_base") == "o200k_base"
    assert target_name("gpt-3.5-turbo", (), "o200k_base") == "cl100k_base"
    assert target_name("mistral-large", mapping, "o200k_base") == "o200k_base"
    assert target_name(None, mapping, "o200k_base") == "o200k_base"
    with pytest.raises(UsageError, match="PATTERN=TOKENIZER"):
        parse_target_map(["=x"])
