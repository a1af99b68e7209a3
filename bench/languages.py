"""Needles in Chinese and Japanese prose, the question inside the prompt: are they kept?

A case is a haystack of about N characters (`--chars`) of consecutive prose paragraphs
from a random start in one split's pool (`bench.corpora.cjk_paragraphs`: Debian's
Chinese and Japanese man pages and Debian Reference, prose paragraphs only), one fact
sentence (the needle) put in at a uniformly random depth in [5%, 95%] of its characters,
then a blank line and a question about the fact, worded by one of the language's
QUESTIONS templates. The question is only in the prompt: `compress` is called without
`query=`, so the library has to find it (query detection, its default). Even cases put
the needle inside a paragraph, at the first sentence boundary after the depth (right
after 。！？, closing brackets included, or at a paragraph's start), odd cases as a
paragraph of its own at the first paragraph break after it. A case counts as kept when
the whole needle sentence appears verbatim in the output. A language whose package is
not installed is reported and skipped (its rows say so).

The split is by source document, fixed: dev is man section 1 and the Reference's
chapters 1-6, test is man sections 3, 5, 7 and 8 and its chapters 7-12 and appendix
(`bench.corpora.CJK_SPLITS`). The `en` row is a control, so that a change for CJK can be
seen not to cost English: `bench.needle`'s needles (facts and their questions) in
Debian-handbook paragraphs, dev the first half of them, test the second.

Needles are this module's own narrative sentences, nine shapes per language (`en`:
`bench.needle`'s eight), as in `bench.needle` (codes of 6 digits, pier and trail
numbers, counts, prices, colours, places, persons, things), filled from the lists
below. Each case is drawn from random.Random(f"languages-{language}-{split}-{index}"):
the same across runs, scorers, rates and wordings.

By default the question is in the fact's words. `--paraphrase` asks each question in
other words, sharing only the entity it is about (a name or a place; for `en`,
`bench.needle`'s third column): the same haystacks, needles, depths and templates, so
the two runs differ only in the question. Word overlap (in Chinese and Japanese, the
character pairs of `crossprefill_cli.text.scripts.words`) then points at the entity, not
at what is asked about it.

Detection, from each case's first rate that compresses: **exact** when query_source is
"detected" and result.query holds the question verbatim with at most
`bench.question.EXACT_SLACK` other characters (a label, the template's lead-in);
**wrong span** when something else was detected; **none** when nothing was. One miss per
language is printed. A compress that raises counts as a failure (not kept); the first
message of each kind of error is printed.

    python -m bench.languages --cases 12 --split dev --rates 0.125
    python -m bench.languages --cases 12 --split dev --rates 0.125 --paraphrase
"""

import argparse
import random
import re
import time
from collections import Counter
from dataclasses import dataclass

from crossprefill_cli import compress
from crossprefill_cli.models.draft import load_draft

from . import needle as english
from .corpora import cjk_paragraphs, handbook_paragraphs, paragraph_run
from .methods import bench_cache
from .options import provenance
from .question import EXACT_SLACK
from .targets import bench_target

LANGUAGES = ["zh", "ja", "en"]
SPLITS = ["dev", "test"]

ZH_NAMES = ["王秀英", "李建国", "张晓明", "陈静怡", "刘志强", "赵雨桐", "周文博", "吴海燕",
            "孙立新", "郑可欣"]
ZH_PLACES = ["青石镇", "白沙港", "云雾岭", "临江村", "南湖岛", "松风城"]
ZH_THINGS = ["铜罗盘", "胡桃木箱子", "蓝色雨伞", "青瓷茶壶", "铜水壶", "皮革挎包", "石雕猫头鹰",
             "玻璃灯笼"]
ZH_COLOURS = ["橘黄色", "墨绿色", "深红色", "紫罗兰色", "天蓝色"]
# (fact, question in the fact's words, question in other words), as bench.needle's
# NEEDLES: the paraphrase keeps only the entity (a name or a place) and says the rest
# differently, sharing no character pair with the fact beyond the entity's own (in
# Japanese, beyond さん and an inflection's kana too: です, ます, した, てい)
ZH_NEEDLES = [
    ("{name}记住的发射代码是{code}。", "{name}记住的发射代码是什么？",
     "{name}脑子里的那串启动数字是多少？"),
    ("开往{place}的夜班渡轮只在下雨的星期四从{number}号码头出发。",
     "开往{place}的夜班渡轮从几号码头出发？",
     "深夜要坐船去{place}，该到哪个泊位登船？"),
    ("{place}磨坊的地窖里，磨坊主一共存放了{number}桶苹果酒。",
     "{place}磨坊的地窖里存放了多少桶苹果酒？",
     "{place}那位磨面师傅在地下室里囤了多少酒？"),
    ("洪水过后，{place}灯塔的看守人把灯塔的门漆成了{colour}。",
     "{place}灯塔的门被漆成了什么颜色？",
     "{place}那座给船指路的塔，大门如今是什么颜色？"),
    ("{name}出海去{place}之前，把{thing}埋在了第三棵橄榄树下。",
     "{name}出海去{place}之前把{thing}埋在了哪里？",
     "{name}启航前把那件东西藏到了什么下面？"),
    ("{place}博物馆里最古老的那枚硬币，是{name}在一个{thing}里发现的。",
     "{place}博物馆里最古老的那枚硬币是谁发现的？",
     "{place}展出的年代最久远的钱币是谁找到的？"),
    ("要去{place}天文台，登山者须沿{number}号步道走过结冰的湖。",
     "去{place}天文台要沿几号步道走？",
     "徒步的人想上{place}的观星站，该走哪条小路？"),
    ("{name}在{place}的旧货市场花{price}元买下了一个{thing}。",
     "{name}在{place}的旧货市场花多少钱买下了{thing}？",
     "{name}逛跳蚤集市淘到那件宝贝，付了多少钱？"),
    ("{name}遗失的{thing}如今保管在{place}车站的失物招领处。",
     "{name}遗失的{thing}如今保管在哪里？",
     "{name}弄丢的那件东西现在放在哪儿？"),
]
ZH_QUESTIONS = ["{q}", "问题：{q}", "请根据上文回答：{q}", "根据以上内容回答下面的问题。\n{q}"]

JA_NAMES = ["佐藤美咲", "鈴木健太", "高橋陽子", "田中翔太", "伊藤さくら", "渡辺大輔", "山本真由美",
            "中村悠斗", "小林結衣", "加藤誠"]
JA_PLACES = ["青葉港", "白浜町", "霧ヶ峰村", "月見島", "桜川市", "北山台"]
JA_THINGS = ["真鍮のコンパス", "クルミ材の箱", "青い傘", "磁器のティーポット", "銅のやかん",
             "革のかばん", "石のフクロウ", "ガラスのランタン"]
JA_COLOURS = ["山吹色", "深緑色", "真紅", "すみれ色", "水色"]
JA_NEEDLES = [
    ("{name}さんが覚えた発射コードは{code}です。", "{name}さんが覚えた発射コードは何ですか？",
     "{name}さんが暗記している打ち上げ用の番号はいくつですか？"),
    ("{place}行きの夜行フェリーは、雨の木曜日にだけ{number}番桟橋から出航します。",
     "{place}行きの夜行フェリーは何番桟橋から出航しますか？",
     "夜遅くに{place}へ向かう船には、どこで乗ればいいですか？"),
    ("{place}の水車小屋の地下室に、粉屋はちょうど{number}樽のりんご酒を蓄えていました。",
     "{place}の水車小屋の地下室に、粉屋は何樽のりんご酒を蓄えていましたか？",
     "{place}で粉をひく職人が床下に寝かせていたお酒は、どれほどの量ですか？"),
    ("洪水のあと、{place}灯台の灯台守は扉を{colour}に塗りました。",
     "{place}灯台の灯台守は扉を何色に塗りましたか？",
     "{place}で船を導く塔の入口は、今何色ですか？"),
    ("{name}さんは{place}へ船出する前に、{thing}を三本目のオリーブの木の下に埋めました。",
     "{name}さんは{place}へ船出する前に、{thing}をどこに埋めましたか？",
     "{name}さんが航海に旅立つ直前、あの品物を隠したのは何の根元ですか？"),
    ("{place}博物館で最も古い硬貨は、{name}さんが{thing}の中から見つけたものです。",
     "{place}博物館で最も古い硬貨を見つけたのは誰ですか？",
     "{place}に展示されている一番昔のお金を発見したのは、どなたですか？"),
    ("{place}天文台へ行くには、凍った湖を過ぎて{number}番の登山道をたどります。",
     "{place}天文台へ行くには何番の登山道をたどりますか？",
     "{place}で星を観測する施設に歩いて向かう場合、どのルートを選べばよいですか？"),
    ("{name}さんは{place}の骨董市で{thing}を{price}円で買いました。",
     "{name}さんは{place}の骨董市で{thing}をいくらで買いましたか？",
     "{name}さんが古物の露店で見つけた掘り出し物には、いくら支払ったのですか？"),
    ("{name}さんがなくした{thing}は、{place}駅の忘れ物センターに保管されています。",
     "{name}さんがなくした{thing}はどこに保管されていますか？",
     "{name}さんの落とし物は、今どこにありますか？"),
]
JA_QUESTIONS = ["{q}", "質問：{q}", "上の文章に基づいて答えてください：{q}",
                "以上の内容から次の質問に答えてください。\n{q}"]
EN_QUESTIONS = ["{q}", "Question: {q}", "Answer the question based on the text above: {q}"]

# language: (needles, names, places, things, colours, question templates)
WORDS = {
    "zh": (ZH_NEEDLES, ZH_NAMES, ZH_PLACES, ZH_THINGS, ZH_COLOURS, ZH_QUESTIONS),
    "ja": (JA_NEEDLES, JA_NAMES, JA_PLACES, JA_THINGS, JA_COLOURS, JA_QUESTIONS),
    "en": (english.NEEDLES, english.NAMES, english.PLACES, english.THINGS, english.COLOURS,
           EN_QUESTIONS),
}
# where a needle may go inside a paragraph: after a sentence's end (CJK: 。！？ and any
# closing brackets or quotes, and a space if one follows) or at a paragraph's start
CJK_BOUNDARY = re.compile(r"[。！？][」』）”’\"')]* ?|\n\n")
EN_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n\n")


@dataclass
class Case:
    text: str  # the prompt: haystack, a blank line, the question
    needle: str
    question: str  # the question alone, without its template's label
    haystack: str
    own_paragraph: bool
    template: int  # index of the question's template in the language's list


def pool(language: str, split: str) -> tuple[str, ...]:
    if language != "en":
        return cjk_paragraphs(language, split)
    paragraphs = handbook_paragraphs()
    half = len(paragraphs) // 2
    return paragraphs[:half] if split == "dev" else paragraphs[half:]


def put_in(paragraphs: list[str], needle: str, depth: float, own: bool, language: str) -> str:
    """The paragraphs (blank lines between) with the needle at the first boundary after
    `depth` of their characters: a paragraph break when `own`, else a sentence boundary."""
    text = "\n\n".join(paragraphs)
    at = int(depth * len(text))
    if own:
        spot = text.find("\n\n", at)
        spot = spot if spot >= 0 else text.rfind("\n\n")
        return text[:spot] + "\n\n" + needle + text[spot:]
    match = (EN_BOUNDARY if language == "en" else CJK_BOUNDARY).search(text, at)
    spot = match.end() if match else text.rfind("\n\n") + 2
    # a space after it where sentences are spaced (English, and CJK text that spaces them)
    spaced = language == "en" or (match is not None and match[0].endswith(" "))
    return text[:spot] + needle + (" " if spaced else "") + text[spot:]


def make_case(language: str, split: str, index: int, chars: int,
              paraphrase: bool = False) -> Case:
    rng = random.Random(f"languages-{language}-{split}-{index}")
    needles, names, places, things, colours, questions = WORDS[language]
    paragraphs = paragraph_run(rng, pool(language, split), chars)
    fill = dict(name=rng.choice(names), place=rng.choice(places), thing=rng.choice(things),
                colour=rng.choice(colours), number=str(rng.randrange(11, 98)),
                code=str(rng.randrange(10 ** 5, 10 ** 6)), price=str(rng.randrange(12, 99) * 100))
    fact, question, paraphrased = rng.choice(needles)  # the same draws either way
    asked = paraphrased if paraphrase else question
    needle, question = fact.format(**fill), asked.format(**fill)
    own = index % 2 == 1
    haystack = put_in(paragraphs, needle, rng.uniform(0.05, 0.95), own, language)
    template = rng.randrange(len(questions))
    text = haystack + "\n\n" + questions[template].format(q=question)
    return Case(text, needle, question, haystack, own, template)


def detection(result, question: str) -> str:
    """exact, wrong span or none (see the module docstring)."""
    if result.query_source != "detected" or not result.query:
        return "none"
    exact = question in result.query and len(result.query) - len(question) <= EXACT_SLACK
    return "exact" if exact else "wrong span"


def run(args) -> None:
    started = time.perf_counter()
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    splits = SPLITS if args.split == "both" else [args.split]
    missing = {}  # language: why its prose cannot be read (a package not installed)
    for language in args.languages:
        try:
            for split in splits:
                pool(language, split)
        except SystemExit as error:
            missing[language] = str(error)
            print(f"  {language} skipped: {error}", flush=True)
    kept, failed, found, by_template = Counter(), Counter(), Counter(), Counter()
    chars, tokens, misses, errors = Counter(), Counter(), {}, {}
    for language in (language for language in args.languages if language not in missing):
        for split in splits:
            for index in range(args.cases):
                case = make_case(language, split, index, args.chars, args.paraphrase)
                chars[language, split] += len(case.haystack)
                tokens[language, split] += target.count(case.haystack)
                for scorer in args.scorers:
                    verdict = None
                    for rate in args.rates:
                        try:
                            result = compress(case.text, draft=draft, target=target,
                                              keep_rate=rate, scorer=scorer, cache=bench_cache())
                        except Exception as error:  # noqa: BLE001 - counted, first one shown
                            failed[language, split, scorer, rate] += 1
                            kind = type(error).__name__
                            if kind not in errors:
                                errors[kind] = f"{language} {split} #{index} {scorer} @ {rate:g}"
                                print(f"  failed ({errors[kind]}): {kind}: {error}", flush=True)
                            continue
                        kept[language, split, scorer, rate] += case.needle in result.text
                        if verdict is None:
                            verdict = detection(result, case.question)
                            found[language, split, scorer, verdict] += 1
                            by_template[language, case.template, verdict == "exact"] += 1
                            if verdict != "exact":
                                misses.setdefault(language, (verdict, case.question,
                                                             result.query or ""))
                print(f"  {language} {split}, case {index + 1}/{args.cases} done "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    n = args.cases
    print()
    wording = "paraphrased questions" if args.paraphrase else "questions in the fact's words"
    print(provenance(args, target.name, f"{n} cases per row, {args.chars} characters of "
                     f"haystack, {wording}, inside the prompt (no query=)", "bench.languages"))
    print("Needle kept (whole sentence verbatim, share of cases) and compressions that failed; "
          f"detection: exact = the question within the detected query, at most {EXACT_SLACK} "
          "other characters; wrong = something else detected; none = nothing detected\n")
    rates = [f"kept @ {r:g} | failed @ {r:g}" for r in args.rates]
    print("| language | split | scorer | chars | tokens | " + " | ".join(rates)
          + " | exact | wrong | none |")
    print("|---|---|---|---:|---:|" + "---:|---:|" * len(args.rates) + "---:|---:|---:|")
    for language in args.languages:
        for split in splits:
            if language in missing:
                print(f"| {language} | {split} | not run: {missing[language]} |")
                continue
            for scorer in args.scorers:
                cells = [f"{100 * kept[language, split, scorer, r] / n:.0f}% | "
                         f"{failed[language, split, scorer, r]}" for r in args.rates]
                detected = [str(found[language, split, scorer, v])
                            for v in ("exact", "wrong span", "none")]
                print(f"| {language} | {split} | {scorer} | {chars[language, split] / n:.0f} | "
                      f"{tokens[language, split] / n:.0f} | " + " | ".join(cells) + " | "
                      + " | ".join(detected) + " |")
    print("\nexact detections by question template (all splits and scorers), exact/cases:")
    for language in (language for language in args.languages if language not in missing):
        templates = WORDS[language][5]
        cells = [f"{template.format(q='…')!r}: {by_template[language, i, True]}/"
                 f"{by_template[language, i, True] + by_template[language, i, False]}"
                 for i, template in enumerate(templates)]
        print(f"  {language}: " + ", ".join(cells))
    for language, (verdict, question, query) in misses.items():
        print(f"\n{language}, {verdict}: asked {question!r}, detected {query[:120]!r}")
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    listed = lambda kind: lambda s: [kind(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--languages", type=listed(str), default=LANGUAGES,
                        help=f"comma-separated, of: {', '.join(LANGUAGES)}")
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="dev")
    parser.add_argument("--cases", type=int, default=12, help="cases per language and split")
    parser.add_argument("--chars", type=int, default=8000, help="haystack size, characters")
    parser.add_argument("--scorers", type=listed(str), default=["evidence", "lexical"],
                        help="pipeline scorers (evidence is the library's default)")
    parser.add_argument("--rates", type=listed(float), default=[0.125])
    parser.add_argument("--paraphrase", action="store_true",
                        help="ask in other words than the fact's (only the entity is shared)")
    args = parser.parse_args()
    unknown = set(args.languages) - set(LANGUAGES)
    if unknown:
        parser.error(f"unknown languages: {', '.join(sorted(unknown))}")
    run(args)


if __name__ == "__main__":
    main()
