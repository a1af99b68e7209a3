"""Synthetic "fact recall in prose" data for the crossprefill draft model.

Everything here is generated from a seeded ``random.Random``; no external data.
Facts are (subject, attribute, value) triples rendered with many surface templates;
questions are rendered with *different* templates that share only the subject and
attribute words with the fact.  Templates and word pools are split into a TRAIN and a
HELD-OUT part so that the eval measures generalisation to unseen wording.

Deliberately avoided in every template: "needle", "magic number", "passphrase",
"secret", i.e. the wording of the usual needle-in-a-haystack benchmarks.

A set of facts is one target and up to five distractors that, in three sets of
four, share its subject or its attribute, so that attending to the right sentence
needs both the subject and the attribute of the question, not either alone
(`prose_set`); some questions are reversed (the value is given, the subject asked).
`code_set` renders facts as code (`def f(): return v`, assignments, config lines) and
`event_set` as events (who did what, where and when) asked with who/where/when/what
questions, so that answers are phrases and not only values. Every set is returned as
(fact sentences in context order, question, answer, index of the asked fact); the
rows of `rows.py` insert the sentences into a natural passage and follow them with
`QUERY_TEMPLATE`. The held-out word pool is the corpus words (about a seventh) whose
character codes sum to a multiple of 7.
"""
from __future__ import annotations

import random
import re
import string

QUERY_TEMPLATE = "\n\nQuestion: {query}\nAnswer:"

# --------------------------------------------------------------------------- templates
# {S} subject, {Sc} subject capitalised, {A} attribute, {Ac} attribute capitalised, {V} value
FACT_TRAIN = [
    "The {A} of {S} is {V}.",
    "{Sc}'s {A} is {V}.",
    "For {S}, the {A} is {V}.",
    "{Sc} has a {A} of {V}.",
    "It is recorded that the {A} for {S} is {V}.",
    "According to the notes, {S} uses {V} as its {A}.",
    "{V} is the {A} of {S}.",
    "Note: {A} for {S} = {V}.",
    "{Sc} ({A}: {V}).",
    "We set the {A} of {S} to {V} last week.",
    "Remember that {S} keeps {V} as the {A}.",
    "The {A} assigned to {S} was {V}.",
    "- {Sc}: {A} {V}",
    "In the records, {S} is listed with {A} {V}.",
    "After the review, the {A} of {S} became {V}.",
    "| {Sc} | {A} | {V} |",
    "{Sc} reported a {A} of {V}.",
    "{Ac} ({S}): {V}",
    "Everyone agreed that {S} should have {V} as its {A}.",
    "The team chose {V} as the {A} for {S}.",
    "As of today, the {A} of {S} stands at {V}.",
    "{Sc} changed its {A} to {V} in the spring.",
    "If you need the {A} of {S}, it is {V}.",
    "The current {A} for {S}: {V}.",
    "Please note that {S} now has the {A} {V}.",
    "Our documentation gives {V} as the {A} of {S}.",
    "{Sc} -- {A}: {V}",
    "The {A} used by {S} has always been {V}.",
    "Last year {S} switched to the {A} {V}.",
    "The {A} was {V} for {S}, unlike the others.",
    "By default, {S} is configured with the {A} {V}.",
    "{Sc} is known for its {A}, which is {V}.",
    "On the form, the {A} of {S} was filled in as {V}.",
    "The official {A} of {S} is {V}, not anything else.",
    "We later learned that {S} had the {A} {V}.",
    "{Sc} lists its {A} as {V}.",
]
FACT_HELDOUT = [
    "Officially, {S} lists {V} under {A}.",
    "When asked about the {A}, {S} said it was {V}.",
    "{Sc} was given the {A} {V} during setup.",
    "Records show {V} for the {A} of {S}.",
    "The {A} that belongs to {S} reads {V}.",
    "Somewhere in the archive it says that {S} carries the {A} {V}.",
]
QUESTION_TRAIN = [
    "What is the {A} of {S}?",
    "What is {S}'s {A}?",
    "Which {A} does {S} have?",
    "What {A} is used by {S}?",
    "Tell me the {A} of {S}.",
    "{Ac} of {S}?",
    "What was the {A} for {S}?",
    "Give the {A} for {S}.",
    "What value does {S} have for {A}?",
    "Can you recall the {A} of {S}?",
    "For {S}, what is the {A}?",
    "What {A} was set for {S}?",
    "Which value is the {A} of {S}?",
    "State the {A} of {S}.",
    "What is listed as the {A} of {S}?",
    "What is the {A} that {S} has?",
    "Look up the {A} of {S}.",
    "I need the {A} of {S}. What is it?",
]
QUESTION_HELDOUT = [
    "Do you know what {S} has as its {A}?",
    "Looking at {S}, which {A} is mentioned?",
    "According to the text, what {A} was given for {S}?",
    "Name the {A} associated with {S}.",
    "What does the text say about the {A} of {S}?",
]
# reverse questions: the answer is the subject
REVERSE_TRAIN = [
    "Which one has the {A} {V}?",
    "Who has the {A} {V}?",
    "Whose {A} is {V}?",
    "What has {V} as its {A}?",
]
REVERSE_HELDOUT = ["Which of them is listed with the {A} {V}?"]

# code-ish facts: (fact, [questions], answer_kind) with {F} a function/constant name
CODE_TRAIN = [
    ("def {F}({ARGS}):\n    return {V}\n", ["What does {F} return?", "What value is returned by {F}?",
                                             "What is the return value of {F}?"], "V"),
    ("def {F}({ARGS}):\n    return {V}\n", ["Which function returns {V}?", "What function gives {V}?"], "F"),
    ("{FU} = {V}\n", ["What is the value of {FU}?", "What is {FU} set to?", "Which value does {FU} hold?"], "V"),
    ("config['{F}'] = {V}\n", ["What is {F} configured as?", "What is the {F} setting?"], "V"),
    ("{F}: {V}\n", ["What is the {F} option?", "Which value has {F}?"], "V"),
    ("    self.{F} = {V}\n", ["What is self.{F} assigned?", "What does the {F} attribute hold?"], "V"),
    ("# {F} defaults to {V}\n", ["What does {F} default to?", "What is the default of {F}?"], "V"),
]
CODE_HELDOUT = [
    ("{F} = lambda: {V}\n", ["What does {F} give back?"], "V"),
    ("export {FU}={V}\n", ["What value is exported as {FU}?"], "V"),
]

# Questions about named functions of a code passage (the "functions in a dump" rows):
# {names} is one or several function names. Deliberately unlike bench/code.py's wording.
FUNCTION_QUESTION_TRAIN = [
    "Explain what {names} do.",
    "How do {names} work?",
    "Which of {names} can raise an exception?",
    "Review {names}. Is anything off?",
    "Do {names} handle an empty argument correctly?",
    "What do {names} return?",
    "Walk me through {names}.",
    "Is there an off-by-one error in {names}?",
    "Compare {names}: how do they differ?",
    "Which of {names} looks wrong to you?",
    "Summarise the logic of {names}.",
    "Where do {names} check their inputs?",
]
# Continuations after "Answer:" for the retrieval-attention loss when no real answer is
# given: at scoring time the draft steps its own (mostly wrong) greedy tokens, and the
# retrieval heads must keep attending from those too.
FILLER_WORDS = ["the", "The", "is", "a", "of", "to", "it", "in", "and", "function", "value",
                "returns", "line", "it", "that", "This", "set", "not", "one", "called", "\n",
                ":", ".", ",", "(", ")", "is", "was", "be", "for", "by", "with"]

# curated attribute nouns (split train / held-out); random corpus words are added too
ATTR_TRAIN = """room number|access code|favourite colour|launch date|version|port|capacity|budget|
owner|home town|licence key|serial number|team size|top speed|opening hour|postal code|
server name|phone extension|badge number|release name|mascot|default shell|build number|
timeout|maximum size|priority|floor|locker number|account id|order number|backup day|
mirror url|batch size|nickname|password hint|birthday|salary band|desk number|colour|
favourite fruit|main language|group id|retry limit|cache size|host name|country|
price|weight|height|age|score|rank|id|code|label|status|theme|mode|level|region""".replace("\n", "").split("|")
ATTR_HELDOUT = """parking space|storage quota|meeting day|radio channel|favourite book|
ticket number|shoe size|fax number|vault number|reference code""".replace("\n", "").split("|")

SYL = ["ka", "lo", "mi", "ra", "ten", "vor", "sa", "bel", "dri", "no", "qui", "ash", "el", "mar",
       "ti", "zu", "pen", "ro", "ga", "lin", "the", "os", "ver", "da", "fen", "il", "ur", "bo",
       "cas", "sen", "jo", "ny", "ha", "wel", "tor", "ri", "an", "ce", "do", "mo", "ly", "ke"]
UNITS = ["kg", "km", "MB", "GB", "ms", "seconds", "minutes", "euros", "dollars", "metres",
         "litres", "hours", "days", "percent", "users", "pages"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


# Event facts (phase E): who did what, where and when; the answer is a phrase (a name,
# a place, a time, an object), asked with who/where/when/what questions.  Verbs, objects
# and sentence shapes are deliberately unlike bench/needle.py's needles.
# (past tense, base form, past participle)
EVENT_VERBS = [("hid", "hide", "hidden"), ("repaired", "repair", "repaired"),
               ("sold", "sell", "sold"), ("delivered", "deliver", "delivered"),
               ("borrowed", "borrow", "borrowed"), ("planted", "plant", "planted"),
               ("stored", "store", "stored"), ("lost", "lose", "lost"),
               ("signed", "sign", "signed"), ("opened", "open", "opened"),
               ("tested", "test", "tested"), ("moved", "move", "moved"),
               ("built", "build", "built"), ("photographed", "photograph", "photographed"),
               ("returned", "return", "returned"), ("wrote", "write", "written"),
               ("installed", "install", "installed"), ("cleaned", "clean", "cleaned")]
EVENT_ADJECTIVES = ["old", "green", "heavy", "small", "broken", "wooden", "silver", "spare",
                    "red", "tall", "cracked", "square", "new", "plastic", "yellow", "rusty"]
EVENT_NOUNS = ["ladder", "bicycle", "letter", "clock", "mirror", "tractor", "banner", "crate",
               "radio", "piano", "bench", "statue", "engine", "carpet", "drum", "map", "tent",
               "fence", "sign", "telescope", "boat", "printer", "lamp", "contract"]
EVENT_PLACES = ["in {N}", "at the {w} station", "near the {N} bridge", "behind the {w} shed",
                "on platform {n}", "in room {n}", "inside the {N} depot", "at {N} harbour"]
EVENT_TIMES = ["on {D}", "in {M} {Y}", "at {t}", "after the {w} meeting", "in the winter of {Y}",
               "early on {D}"]
EVENT_FACT_TRAIN = [
    "{Agent} {past} the {obj} {place} {time}.",
    "{Time}, {agent} {past} the {obj} {place}.",
    "It was {agent} who {past} the {obj} {place} {time}.",
    "The {obj} was {pp} by {agent} {place} {time}.",
    "{Place}, {agent} {past} the {obj} {time}.",
    "{Agent} finally {past} the {obj} {time}, {place}.",
]
EVENT_QUESTION_TRAIN = {
    "agent": ["Who {past} the {obj}?", "Which person {past} the {obj}?",
              "By whom was the {obj} {pp}?"],
    "place": ["Where did {agent} {base} the {obj}?", "In what place was the {obj} {pp}?",
              "Where was the {obj} {pp}?"],
    "time": ["When did {agent} {base} the {obj}?", "At what time was the {obj} {pp}?",
             "When was the {obj} {pp} by {agent}?"],
    "obj": ["What did {agent} {base} {place}?", "Which thing was {pp} by {agent}?"],
}


class FactMaker:
    """Generates facts/questions. ``heldout=True`` uses the held-out templates and word pool."""

    def __init__(self, words: list[str], rng: random.Random, heldout: bool = False):
        self.rng = rng
        self.heldout = heldout
        # split corpus words deterministically by a hash-like criterion
        pool = [w for w in words if (sum(map(ord, w)) % 7 == 0) == heldout]
        self.words = pool
        self.fact_t = FACT_HELDOUT if heldout else FACT_TRAIN
        self.q_t = QUESTION_HELDOUT if heldout else QUESTION_TRAIN
        self.rev_t = REVERSE_HELDOUT if heldout else REVERSE_TRAIN
        self.code_t = CODE_HELDOUT if heldout else CODE_TRAIN
        self.attrs = ATTR_HELDOUT if heldout else ATTR_TRAIN

    # ---- pieces
    def word(self):
        return self.rng.choice(self.words)

    def name(self):
        r = self.rng
        n = "".join(r.choice(SYL) for _ in range(r.randint(2, 3)))
        return n.capitalize()

    def subject(self):
        r = self.rng
        k = r.random()
        if k < 0.25:
            return self.name() if r.random() < 0.5 else f"{self.name()} {self.name()}"
        if k < 0.45:
            return f"the {self.word()} {self.word()}"
        if k < 0.55:
            return f"project {self.name()}"
        if k < 0.65:
            return f"the {self.word()} team"
        if k < 0.75:
            return f"server {self.name().lower()}{r.randint(1, 99)}"
        if k < 0.85:
            return f"the city of {self.name()}"
        if k < 0.93:
            return f"the {self.word()} of {self.name()}"
        return f"{self.name()}'s {self.word()}"

    def attribute(self):
        r = self.rng
        if r.random() < 0.55:
            return r.choice(self.attrs)
        if r.random() < 0.5:
            return self.word()
        return f"{self.word()} {r.choice(['number', 'name', 'code', 'date', 'level', 'value', 'size', 'id'])}"

    def value(self):
        r = self.rng
        k = r.random()
        if k < 0.30:
            return str(r.randint(0, 10 ** r.randint(1, 7)))
        if k < 0.40:
            return f"{r.choice(string.ascii_uppercase)}{r.choice(string.ascii_uppercase)}-{r.randint(100, 9999)}"
        if k < 0.50:
            return self.word()
        if k < 0.58:
            return self.name()
        if k < 0.64:
            return f"{r.randint(1, 28)} {r.choice(MONTHS)} {r.randint(1900, 2030)}"
        if k < 0.70:
            return f"{r.randint(0, 12)}.{r.randint(0, 30)}.{r.randint(0, 99)}"
        if k < 0.76:
            return f"{r.randint(1, 999)} {r.choice(UNITS)}"
        if k < 0.81:
            return "".join(r.choice("0123456789abcdef") for _ in range(r.randint(4, 8)))
        if k < 0.86:
            return f"/{self.word()}/{self.word()}"
        if k < 0.90:
            return r.choice(DAYS)
        if k < 0.95:
            return f"{self.word()}-{self.word()}-{r.randint(1, 99)}"
        return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"

    def ident(self):
        r = self.rng
        parts = [self.word() for _ in range(r.randint(1, 3))]
        return re.sub(r"[^a-z_]", "", "_".join(p.lower() for p in parts)) or "item"

    # ---- full facts
    def render(self, t, S, A, V):
        return t.format(S=S, Sc=S[0].upper() + S[1:], A=A, Ac=A[0].upper() + A[1:], V=V)

    def prose_set(self, k: int):
        """k facts (1 target + k-1 distractors). Returns (facts, question, answer, target_index)."""
        r = self.rng
        S0, A0 = self.subject(), self.attribute()
        mode = r.random()
        triples = []
        vals = set()
        for i in range(k):
            if i == 0:
                S, A = S0, A0
            elif mode < 0.45:      # same attribute, other subject: must match the subject
                S, A = self.subject(), A0
            elif mode < 0.75:      # same subject, other attribute: must match the attribute
                S, A = S0, self.attribute()
                if A == A0:
                    A = self.attribute() + " " + r.choice(["total", "limit", "alias"])
            else:
                S, A = self.subject(), self.attribute()
            V = self.value()
            while V in vals:
                V = self.value()
            vals.add(V)
            triples.append((S, A, V))
        # distinct subjects/attribute pairs
        facts = [self.render(r.choice(self.fact_t), *t) for t in triples]
        S, A, V = triples[0]
        only_subject = sum(1 for t in triples if t[1] == A and t[2] == V) == 1
        if r.random() < 0.12 and only_subject and len(S.split()) <= 3 and not S.startswith("the "):
            q = r.choice(self.rev_t).format(A=A, V=V)
            ans = S
        else:
            q = self.render(r.choice(self.q_t), S, A, V)
            ans = V
        order = list(range(k))
        r.shuffle(order)
        facts = [facts[i] for i in order]
        return facts, q, ans, order.index(0)

    def code_set(self, k: int):
        """k code facts (1 target + k-1 distractors); returned like `prose_set`."""
        r = self.rng
        items = []
        used = set()
        for _ in range(k):
            tmpl, qs, kind = r.choice(self.code_t)
            F = self.ident()
            while F in used:
                F = self.ident() + str(r.randint(2, 99))
            used.add(F)
            V = self.value()
            if not re.fullmatch(r"[0-9.]+", V) or V.count(".") > 1:
                V = repr(V) if r.random() < 0.7 else str(r.randint(0, 99999))
            ARGS = ", ".join(self.ident() for _ in range(r.randint(0, 2)))
            fact = tmpl.format(F=F, FU=F.upper(), V=V, ARGS=ARGS)
            q = r.choice(qs).format(F=F, FU=F.upper(), V=V)
            ans = V if kind == "V" else F
            items.append((fact, q, ans))
        order = list(range(k))
        r.shuffle(order)
        facts = [items[i][0] for i in order]
        return facts, items[0][1], items[0][2], order.index(0)

    def event(self):
        """One event as a dict of its slots (agent, verb forms, object, place, time)."""
        r = self.rng

        def fill(t):
            return t.format(N=self.name(), w=self.word(), n=r.randint(2, 99), D=r.choice(DAYS),
                            M=r.choice(MONTHS), Y=r.randint(1950, 2030),
                            t=f"{r.randint(0, 23):02d}:{r.choice(['00', '15', '30', '45'])}")
        agent = self.name() if r.random() < 0.6 else f"{self.name()} {self.name()}"
        past, base, pp = r.choice(EVENT_VERBS)
        obj = f"{r.choice(EVENT_ADJECTIVES)} {r.choice(EVENT_NOUNS)}"
        return dict(agent=agent, past=past, base=base, pp=pp, obj=obj,
                    place=fill(r.choice(EVENT_PLACES)), time=fill(r.choice(EVENT_TIMES)))

    def event_set(self, k: int):
        """k events (1 target + k-1 distractors sharing its agent, object or verb), a
        who/where/when/what question about the target, and the answer phrase."""
        r = self.rng
        target = self.event()
        events = [target]
        for _ in range(k - 1):
            other = self.event()
            shared = r.choice([("agent",), ("obj",), ("past", "base", "pp"), ()])
            other.update({key: target[key] for key in shared})
            events.append(other)
        slot = r.choice(list(EVENT_QUESTION_TRAIN))
        facts = []
        for e in events:
            text = r.choice(EVENT_FACT_TRAIN).format(
                Agent=e["agent"], agent=e["agent"], Time=e["time"][0].upper() + e["time"][1:],
                Place=e["place"][0].upper() + e["place"][1:], **{k: v for k, v in e.items()
                                                              if k not in ("agent",)})
            facts.append(text)
        q = r.choice(EVENT_QUESTION_TRAIN[slot]).format(**target)
        ans = target[slot].split(" ", 1)[1] if slot in ("place", "time") else target[slot]
        order = list(range(k))
        r.shuffle(order)
        return [facts[i] for i in order], q, ans, order.index(0)
