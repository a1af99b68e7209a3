"""Words and sentences in scripts written without spaces (`text.scripts`), and what the
lexical signals make of them."""

from collections import Counter

import numpy as np
import pytest

from crossprefill_cli.text import scripts
from crossprefill_cli.units import chunks, evidence, terms

NEEDLE_ZH = "张伟记住的发射代码是510003。"
HAYSTACK_ZH = ["命令行参数有意设计为非常接近 GNU gzip 的形式，但也不完全相同。",
               "每个文件被名为“原始文件名.bz2”的压缩文件替换。",
               "如果未指定文件名，bzip2 将压缩标准输入到标准输出。",
               "压缩率一般比基于 LZ77/LZ78 的压缩软件好得多。"] * 5


def test_runs_of_ideographs_become_character_pairs_and_the_rest_stays_whole():
    assert scripts.words(NEEDLE_ZH + " parse_header OK") == [
        "张伟", "伟记", "记住", "住的", "的发", "发射", "射代", "代码", "码是", "510003",
        "parse_header", "OK"]
    assert scripts.words("田中さん") == ["田中", "中さ", "さん"]
    assert scripts.words("코드는 무엇") == ["코드", "드는", "무엇"]
    assert scripts.words("我 是") == ["我", "是"]  # one character alone is a word


def test_terms_keep_pairs_unstemmed_beside_english_stems():
    assert terms.terms("张伟 failing tests") == ["张伟", "fail", "test"]


def test_the_question_and_its_answer_share_words_in_chinese():
    unit_words = [Counter(evidence.words(text)) for text in [*HAYSTACK_ZH, NEEDLE_ZH]]
    asked = set(evidence.words("张伟记住的发射代码是什么？"))
    scores = evidence.bm25(unit_words, asked)
    assert int(np.argmax(scores)) == len(HAYSTACK_ZH)


def test_lexical_scoring_finds_a_chinese_needle():
    texts = [*HAYSTACK_ZH[:9], NEEDLE_ZH, *HAYSTACK_ZH[9:]]
    scores = evidence.unit_scores("evidence", unit_texts=texts, required=[False] * len(texts),
                                  query="张伟记住的发射代码是什么？",
                                  attention=np.zeros(len(texts)), surprise=None)
    assert int(np.argmax(scores)) == 9


def test_chinese_words_are_not_marked_as_names_are():
    assert evidence.marked_words(["张伟记住了 Zhang 510003"]) == {"zhang", "510003"}


@pytest.mark.parametrize("text, starts", [
    ("第一句。第二句！第三句？第四句", ["第二句！", "第三句？", "第四句"]),
    ("他说：“好吧。”然后走了。", ["然后走了。"]),
    ("日本語です。次の文です。", ["次の文です。"]),
    ("One. Two", ["Two"]),
])
def test_sentences_start_after_full_width_end_marks(text, starts):
    assert [text[m.end():] for m in chunks.SENTENCE_START.finditer(text)] == [
        text[text.index(start):] for start in starts]


def test_chinese_text_may_be_cut_between_any_two_characters():
    assert chunks.is_word_boundary("发射代码", 2)
    assert chunks.is_word_boundary("代码510003", 2)
    assert not chunks.is_word_boundary("510003", 3)
    assert not chunks.is_word_boundary("코드는", 1)  # Korean spaces its words


def test_chinese_chunks_end_where_sentences_end():
    text = "".join(HAYSTACK_ZH[:6]) + NEEDLE_ZH + "".join(HAYSTACK_ZH[6:12])
    starts = np.arange(len(text))  # a token per character
    edges = chunks.chunk_edges(text, starts, 0, len(text), chunk_size=12, boundary="sentence")
    needle = text.index(NEEDLE_ZH)
    assert needle in edges and needle + len(NEEDLE_ZH) in edges


def test_a_chinese_head_ends_with_a_whole_sentence():
    text = "".join(HAYSTACK_ZH[:4])
    cap = len(HAYSTACK_ZH[0]) + 10  # inside the second sentence
    end = chunks.head_end(text, np.arange(len(text)), lines=1, max_tokens=cap,
                          boundary="sentence")
    assert end == len(HAYSTACK_ZH[0])


def chinese_prose(sentences: int) -> str:
    subjects = ["这个命令", "压缩程序", "系统管理员", "配置文件", "软件包管理器", "内核模块"]
    verbs = ["读取", "写入", "检查", "删除", "更新", "解压"]
    objects = ["标准输入", "目录树", "日志文件", "软件源列表", "临时文件", "用户设置"]
    return "".join(f"{subjects[i % 6]}在第{i}步{verbs[i * 5 % 6]}{objects[i * 7 % 6]}，然后继续运行。"
                   + ("\n\n" if i % 5 == 4 else "") for i in range(sentences))


def test_a_chinese_needle_survives_with_the_question_inside_the_prompt(target):
    from crossprefill_cli import compress

    prose = chinese_prose(120)
    middle = prose.index("。", len(prose) // 2) + 1
    text = prose[:middle] + NEEDLE_ZH + prose[middle:] + "\n\n问题：张伟记住的发射代码是什么？\n"
    result = compress(text, keep_rate=0.125, target=target)  # the bundled draft
    assert (result.query, result.query_source) == ("张伟记住的发射代码是什么？", "detected")
    assert NEEDLE_ZH in result.text and result.tokens_after <= result.budget
