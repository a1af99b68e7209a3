"""Finding the question inside a prompt, and the turns of chat transcripts."""

import pytest

from crossprefill_cli.text import query

HAYSTACK = " ".join(f"The grass is green and the sky is blue on day {i}." for i in range(200))
RULER_NIAH = ("Some special magic numbers are hidden within the following text. Make sure to "
              "memorize it. I will quiz you about the numbers afterwards.\n" + HAYSTACK +
              " One of the special magic numbers for cautious-lobster is: 4829310. " + HAYSTACK +
              "\nWhat are all the special magic numbers for cautious-lobster mentioned in the "
              "provided text? The special magic numbers for cautious-lobster mentioned in the "
              "provided text are")
RULER_VT = ("Memorize and track the chain(s) of variable assignment hidden in the following "
            "text.\n\n" + HAYSTACK + " VAR QPE = 64523 " + HAYSTACK + "\nQuestion: Find all "
            "variables that are assigned the value 64523 in the text above. Answer: According "
            "to the chain(s) of variable assignment in the text above, 5 variables are assgined "
            "the value 64523, they are: ")
LONGBENCH = ("Answer the question based on the given passages. Only give me the answer and do "
             "not output any other words.\n\nThe following are given passages.\n" + HAYSTACK +
             "\n\nAnswer the question based on the given passages. Only give me the answer and "
             "do not output any other words.\n\nQuestion: Who founded the harbour guild?\nAnswer:")
INFINITEBENCH_KV = ("Extract the value corresponding to the specified key in the JSON object "
                    "below.\n\n" + HAYSTACK + "\n\nKey: \"9f1c-22ab\"\nThe value associated with "
                    "the specified key is: ")
INSTRUCTION_AFTER = HAYSTACK + "\n\nSummarize the text above in two sentences."
INSTRUCTION_LINE = HAYSTACK + "\nPlease list every colour the text names."
LEADING = "Question: In which year did the bridge open?\n\n" + HAYSTACK + "\n"


@pytest.mark.parametrize("text, expected", [
    (RULER_NIAH, "What are all the special magic numbers for cautious-lobster mentioned in the "
                 "provided text? The special magic numbers for cautious-lobster mentioned in "
                 "the provided text are"),
    (RULER_VT, "Find all variables that are assigned the value 64523 in the text above. Answer: "
               "According to the chain(s) of variable assignment in the text above, 5 variables "
               "are assgined the value 64523, they are:"),
    (LONGBENCH, "Who founded the harbour guild?"),
    (INFINITEBENCH_KV, "Key: \"9f1c-22ab\"\nThe value associated with the specified key is:"),
    (INSTRUCTION_AFTER, "Summarize the text above in two sentences."),
    (INSTRUCTION_LINE, "Please list every colour the text names."),
])
def test_a_question_after_the_context_is_found_with_what_follows_it(text, expected):
    found = query.detect(text)
    assert found is not None and found.layout == "end"
    assert found.text == expected
    assert found.end == len(text.rstrip()) and expected.endswith(found.text[-10:])


def test_the_span_is_where_the_question_stands():
    found = query.detect(LONGBENCH)
    assert LONGBENCH[found.start:found.end] == "Question: Who founded the harbour guild?\nAnswer:"


def test_a_question_before_the_context_counts_when_none_follows_it():
    found = query.detect(LEADING)
    assert (found.text, found.layout) == ("In which year did the bridge open?", "start")
    assert LEADING[found.start:found.end] == "Question: In which year did the bridge open?"


def test_text_that_asks_nothing_has_no_query():
    assert query.detect(HAYSTACK) is None
    assert query.detect("Field notes.\n\n" + HAYSTACK + "\n\nThe survey ended in May.\n") is None


def test_a_long_last_line_keeps_only_its_question_sentence():
    text = HAYSTACK + " So which day had the bluest sky?"
    found = query.detect(text)
    assert found.text == "So which day had the bluest sky?"


CHATML = ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHere is a report:\n"
          + HAYSTACK + "<|im_end|>\n<|im_start|>assistant\nNoted.<|im_end|>\n"
          "<|im_start|>user\nWhat colour is the grass?<|im_end|>\n<|im_start|>assistant\n")
LLAMA3 = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\n" + HAYSTACK + "\n\nWhat colour is the "
          "grass?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
GEMMA = ("<start_of_turn>user\n" + HAYSTACK + "<end_of_turn>\n<start_of_turn>model\nOk."
         "<end_of_turn>\n<start_of_turn>user\nWhat colour is the grass?<end_of_turn>\n"
         "<start_of_turn>model\n")
MISTRAL = ("<s>[INST] " + HAYSTACK + " [/INST] Ok.</s>[INST] What colour is the grass? [/INST]")
DEEPSEEK = ("<｜begin▁of▁sentence｜>Be brief.<｜User｜>" + HAYSTACK + "<｜Assistant｜>Ok."
            "<｜end▁of▁sentence｜><｜User｜>What colour is the grass?<｜Assistant｜>")
PHI3 = ("<|system|>\nBe brief.<|end|>\n<|user|>\n" + HAYSTACK + "<|end|>\n<|assistant|>\nOk."
        "<|end|>\n<|user|>\nWhat colour is the grass?<|end|>\n<|assistant|>\n")
PLAIN = "User: " + HAYSTACK + "\nAssistant: Ok.\nUser: What colour is the grass?\nAssistant:"


@pytest.mark.parametrize("text, name", [(CHATML, "chatml"), (LLAMA3, "llama3"), (GEMMA, "gemma"),
                                        (PHI3, "phi3"), (MISTRAL, "mistral"),
                                        (DEEPSEEK, "deepseek"),
                                        (PLAIN, "plain")])
def test_the_last_user_turn_of_a_transcript_is_the_query(text, name):
    chat = query.transcript(text)
    assert chat is not None and chat.format == name
    found = query.detect(text)
    assert (found.text, found.layout) == ("What colour is the grass?", "chat")
    last = chat.last_user
    assert text[last.content_start:last.content_end].endswith("What colour is the grass?")


def test_turns_tile_the_transcript_from_the_first_marker():
    chat = query.transcript(CHATML)
    assert [t.kind for t in chat.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert all(a.end == b.start for a, b in zip(chat.turns, chat.turns[1:]))
    assert chat.turns[-1].end == len(CHATML)
    system = chat.turns[0]
    assert CHATML[system.start:system.content_start] == "<|im_start|>system\n"
    assert CHATML[system.content_start:system.content_end] == "You are terse."
    assert CHATML[system.content_end:system.end] == "<|im_end|>\n"


def test_a_long_last_user_turn_asks_with_its_closing_question():
    text = LLAMA3  # the last user turn is the haystack with the question under it
    found = query.detect(text)
    assert text[found.start:found.end] == "What colour is the grass?"


def test_a_transcript_without_a_user_turn_is_plain_text():
    assert query.transcript("Assistant: hello\nAssistant: again\n") is None
    only_system = "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n"
    assert query.transcript(only_system) is None


def test_an_empty_last_user_turn_asks_with_the_one_before():
    text = CHATML + "Sure.<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
    assert query.detect(text).text == "What colour is the grass?"


def test_text_that_mentions_chat_markers_is_no_transcript():
    documentation = HAYSTACK + ("\nTemplates mark turns with `<｜User｜>`, `<｜Assistant｜>` "
                                "and\nUser: lines.\nAssistant: replies follow.\n")
    assert query.transcript(documentation) is None
    quoted = "Write '<|im_start|>user\n' and '<|im_start|>assistant\n' " + HAYSTACK
    assert query.transcript(quoted) is None


def test_a_question_mark_inside_json_data_asks_nothing():
    import json

    from crossprefill_cli.text import kinds

    data = json.dumps([{"name": f"pkg{i}", "url": f"https://example.org/badge?version={i}",
                        "notes": "x" * 200} for i in range(40)], indent=2)
    prompt = data + "\n\nList the dependencies that pkg7 declares."
    span = kinds.data_span(prompt)
    assert span is not None and span[0] == 0 and prompt[span[1]:].strip().startswith("List")
    found = query.detect(prompt, data=span)
    assert found.text == "List the dependencies that pkg7 declares."
    # without the data's span, a badge URL's `?` near the start reads as the question
    assert query.detect(prompt).text != found.text


PROSE_ZH = "命令行参数有意设计为非常接近 GNU gzip 的形式，但也不完全相同。" * 60
PROSE_JA = "テスト実行を行うデフォルトの方法は、以下のようにビルドコマンドを実行することです。" * 40


@pytest.mark.parametrize("prose, asking, expected", [
    (PROSE_ZH, "张伟记住的发射代码是什么？", "张伟记住的发射代码是什么？"),
    (PROSE_ZH, "问题：张伟记住的发射代码是什么？", "张伟记住的发射代码是什么？"),
    (PROSE_ZH, "問題：張偉記住的發射代碼是什麼？", "張偉記住的發射代碼是什麼？"),
    (PROSE_ZH, "请根据上文回答：张伟记住的发射代码是什么？", "请根据上文回答：张伟记住的发射代码是什么？"),
    (PROSE_ZH, "根据以上内容回答下面的问题。\n张伟记住的发射代码是什么？", "张伟记住的发射代码是什么？"),
    (PROSE_ZH, "请用三句话总结上文。", "请用三句话总结上文。"),
    (PROSE_ZH, "问题：张伟记住的发射代码是什么？\n答案：", "张伟记住的发射代码是什么？"),
    (PROSE_JA, "田中さんが覚えた発射コードは何ですか？", "田中さんが覚えた発射コードは何ですか？"),
    (PROSE_JA, "質問：田中さんが覚えた発射コードは何ですか。", "田中さんが覚えた発射コードは何ですか。"),
    (PROSE_JA, "上の文章に基づいて、田中さんが覚えた発射コードを答えてください。",
     "上の文章に基づいて、田中さんが覚えた発射コードを答えてください。"),
    (PROSE_JA, "以上の内容から次の質問に答えてください。\n田中さんが覚えた発射コードは何ですか？",
     "田中さんが覚えた発射コードは何ですか？"),
    (PROSE_ZH, "질문: 김민수가 기억한 코드는 무엇입니까?", "김민수가 기억한 코드는 무엇입니까?"),
    (PROSE_ZH, "위 글을 읽고 김민수가 기억한 코드를 답하시오.", "위 글을 읽고 김민수가 기억한 코드를 답하시오."),
])
def test_questions_in_chinese_japanese_and_korean_are_found(prose, asking, expected):
    found = query.detect(prose + "\n\n" + asking)
    assert found is not None and found.text == expected and found.layout == "end"


def test_a_long_chinese_line_keeps_only_its_question_sentence():
    line = PROSE_ZH + "张伟记住的发射代码是什么？"  # one line of 2,000 characters
    assert query.detect("前言。\n" + line).text == "张伟记住的发射代码是什么？"


def test_chinese_prose_that_asks_nothing_has_no_query():
    assert query.detect(PROSE_ZH + "\n\n" + PROSE_JA) is None


def test_a_long_chinese_turn_is_a_document_with_a_question_below_it():
    turn = PROSE_ZH[:900] + "\n\n张伟记住的发射代码是什么？"  # 900 characters, 2,700 wide
    assert query.of_user_turn(turn) == "张伟记住的发射代码是什么？"
    assert query.of_user_turn("张伟记住的发射代码是什么？") == "张伟记住的发射代码是什么？"


def test_a_question_is_bounded_by_width_a_wide_letter_counting_three():
    from crossprefill_cli.text import scripts

    assert scripts.width("ab张伟") == 8
    text = "x" * 10 + "张伟记住"
    assert scripts.start_within(text, 0, len(text), 7) == len(text) - 2
    assert scripts.start_within(text, 0, len(text), 12) == len(text) - 4
    assert scripts.start_within(text, 0, len(text), 100) == 0
