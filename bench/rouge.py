"""Benchmark: the exact ROUGE-L index against rouge-score on a synthetic instruction stream.

Run ``.venv/bin/python bench/rouge.py`` (about 3 minutes on 2 cores). The stream is
deterministic, built from templates and word lists written here (10-30 tokens, about one
candidate in four a near-duplicate of an earlier one). It goes through:

(a) rouge-score, as the original Self-Instruct scripts use it: ``scorer.score`` of the
    candidate against every pool instruction, on a prefix of the stream; the per-pair time
    is extrapolated to larger pools;
(b) ``SimilarityIndex.first_above`` + ``add`` on the whole stream until the pool holds 200K
    instructions, timing windows of candidates at pool sizes 1K, 10K, 50K and 200K.

Accept/reject decisions of (a) and (b) are compared on every candidate of the prefix, and
the run fails (exit status 1) on any difference.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selfinstruct_async.similarity import SimilarityIndex

OPENERS = [
    "",
    "",
    "",
    "Please",
    "Can you",
    "I need you to",
    "Your task is to",
    "In a few sentences,",
    "Using simple language,",
    "As an expert,",
    "Briefly",
    "Step by step,",
]

TASKS = [
    "write a short poem about {topic}",
    "write a {form} about {topic} for {audience}",
    "summarize the following {doc} about {topic} in {num} sentences",
    "explain how {topic} works to {audience}",
    "give {num} reasons why {topic} matters for {field}",
    "list {num} common mistakes people make with {topic}",
    "classify the sentiment of the {doc} as positive, negative or neutral",
    "translate the following sentence from {lang} to {lang2}",
    "rewrite the {doc} so that it sounds more {tone}",
    "find the {stat} of the numbers in the given list",
    "sort the given list of {things} by {criterion}",
    "generate a {form} that includes the words {w1}, {w2} and {w3}",
    "suggest {num} names for a new {product} aimed at {audience}",
    "compare {topic} and {topic2} in terms of {criterion}",
    "write a function in {plang} that {code_task}",
    "describe the main differences between {topic} and {topic2}",
    "create a {num} day plan to learn {topic}",
    "answer the following question about {field} with a detailed explanation",
    "identify the {part} in the given sentence",
    "convert the {unit} value to {unit2} and show your work",
    "tell me whether the {doc} is about {field} or {field2}",
    "design a quiz with {num} questions about {topic}",
    "propose an experiment to test whether {topic} affects {topic2}",
    "write an email to {person} asking about {topic}",
    "give an example of a {tone} tweet about {topic}",
    "outline the pros and cons of {topic} for {audience}",
    "detect whether the given {doc} contains {issue}",
    "extract all the {entity} mentioned in the {doc}",
    "fix the grammar in the following {doc} without changing its meaning",
    "come up with a catchy slogan for a {product} made of {material}",
    "recommend {num} {form_plural} for someone who likes {topic}",
    "estimate how long it takes to {activity} and explain your reasoning",
    "plan a {tone} birthday party for {person} on a small budget",
    "write a dialogue between {person} and {person2} about {topic}",
    "predict what happens next in the {doc} and justify the prediction",
]

CLOSERS = [
    "",
    "",
    "",
    "",
    "Keep it under {num} words.",
    "Use a {tone} tone.",
    "Explain your answer.",
    "Include at least one example.",
    "Format the answer as a table.",
    "Avoid technical jargon.",
    "Make sure a {audience_single} could understand it.",
    "Return the result as a numbered list.",
    "Mention {w1} at least once.",
]

ADJECTIVES = [
    "ancient",
    "modern",
    "quantum",
    "urban",
    "rural",
    "digital",
    "solar",
    "coastal",
    "arctic",
    "tropical",
    "medieval",
    "electric",
    "organic",
    "financial",
    "social",
    "political",
    "musical",
    "culinary",
    "robotic",
    "genetic",
    "volcanic",
    "lunar",
    "marine",
    "desert",
    "alpine",
    "industrial",
    "domestic",
    "wireless",
    "neural",
    "chemical",
    "thermal",
    "legal",
    "medical",
    "athletic",
    "botanical",
    "historic",
    "nocturnal",
    "renewable",
    "vintage",
    "miniature",
    "nuclear",
    "migratory",
    "seasonal",
    "civic",
    "coral",
    "glacial",
    "mechanical",
    "statistical",
    "linguistic",
    "visual",
    "acoustic",
    "aerial",
    "agricultural",
    "anonymous",
    "aquatic",
    "architectural",
    "artificial",
    "autonomous",
    "biological",
    "bureaucratic",
    "cardiac",
    "ceramic",
    "chronic",
    "classical",
    "cognitive",
    "colonial",
    "commercial",
    "competitive",
    "cosmic",
    "cultural",
    "decentralized",
    "democratic",
    "dental",
    "diplomatic",
    "ecological",
    "edible",
    "educational",
    "elastic",
    "electoral",
    "emotional",
    "encrypted",
    "endangered",
    "environmental",
    "ethical",
    "experimental",
    "fictional",
    "fiscal",
    "floral",
    "folk",
    "forensic",
    "fossil",
    "geological",
    "geometric",
    "gothic",
    "graphic",
    "handmade",
    "hydraulic",
    "imperial",
    "indigenous",
    "infrared",
    "intellectual",
    "interactive",
    "judicial",
    "literary",
    "magnetic",
    "maritime",
    "mathematical",
    "microscopic",
    "military",
    "mobile",
    "molecular",
    "monetary",
    "mountainous",
    "municipal",
    "mythical",
    "nautical",
    "nomadic",
    "nutritional",
    "oceanic",
    "olympic",
    "optical",
    "orbital",
    "ornamental",
    "pastoral",
    "pediatric",
    "philosophical",
    "photographic",
    "planetary",
    "poetic",
    "polar",
    "portable",
    "prehistoric",
    "psychological",
    "public",
    "radical",
    "regional",
    "religious",
    "residential",
    "romantic",
    "royal",
    "satirical",
    "scientific",
    "secular",
    "sensory",
    "solitary",
    "spiritual",
    "suburban",
    "surgical",
    "sustainable",
    "symbolic",
    "synthetic",
    "theatrical",
    "topographic",
    "toxic",
    "traditional",
    "tribal",
    "underground",
    "underwater",
    "vegetarian",
    "verbal",
    "viral",
    "volunteer",
    "wild",
    "wooden",
    "zoological",
]

NOUNS = [
    "gardens",
    "trains",
    "bridges",
    "volcanoes",
    "satellites",
    "bees",
    "forests",
    "markets",
    "libraries",
    "vaccines",
    "batteries",
    "glaciers",
    "elections",
    "museums",
    "recipes",
    "bicycles",
    "tides",
    "rivers",
    "whales",
    "algorithms",
    "languages",
    "festivals",
    "castles",
    "fungi",
    "deserts",
    "storms",
    "oceans",
    "telescopes",
    "microbes",
    "orchestras",
    "railways",
    "harbors",
    "vineyards",
    "pyramids",
    "rainforests",
    "comets",
    "deltas",
    "reefs",
    "caves",
    "farms",
    "bakeries",
    "tunnels",
    "windmills",
    "lighthouses",
    "monasteries",
    "canals",
    "islands",
    "meteors",
    "earthquakes",
    "crystals",
    "puzzles",
    "mirrors",
    "clocks",
    "engines",
    "lanterns",
    "maps",
    "chess",
    "tea",
    "coffee",
    "chocolate",
    "silk",
    "paper",
    "glass",
    "cotton",
    "rice",
    "salt",
    "spices",
    "bread",
    "cheese",
    "honey",
    "wool",
    "ink",
    "marble",
    "copper",
    "airports",
    "alloys",
    "antibiotics",
    "apartments",
    "aquariums",
    "archives",
    "armies",
    "asteroids",
    "auctions",
    "avalanches",
    "bacteria",
    "ballets",
    "banks",
    "barns",
    "beaches",
    "blizzards",
    "blogs",
    "bones",
    "bookstores",
    "border",
    "cafes",
    "calendars",
    "cameras",
    "campaigns",
    "carnivals",
    "cathedrals",
    "cells",
    "ceremonies",
    "chemicals",
    "circuits",
    "circuses",
    "cliffs",
    "climates",
    "coins",
    "colonies",
    "compasses",
    "computers",
    "concerts",
    "contracts",
    "corals",
    "courts",
    "crops",
    "currencies",
    "dams",
    "databases",
    "debates",
    "diets",
    "dinosaurs",
    "diseases",
    "dolphins",
    "dragons",
    "drones",
    "dunes",
    "eclipses",
    "ecosystems",
    "elephants",
    "embassies",
    "emissions",
    "empires",
    "factories",
    "fashions",
    "fences",
    "ferries",
    "fireworks",
    "fisheries",
    "floods",
    "folktales",
    "fossils",
    "fountains",
    "galaxies",
    "games",
    "genes",
    "geysers",
    "glaciers",
    "grammars",
    "habitats",
    "highways",
    "hormones",
    "hospitals",
    "hurricanes",
    "icebergs",
    "insects",
    "inventions",
    "journals",
    "jungles",
    "kingdoms",
    "kitchens",
    "laboratories",
    "lakes",
    "lasers",
    "lawns",
    "legends",
    "lichens",
    "magnets",
    "mammals",
    "manuscripts",
    "marathons",
    "meadows",
    "medicines",
    "metals",
    "migrations",
    "minerals",
    "molecules",
    "monsoons",
    "mosaics",
    "mosquitoes",
    "mountains",
    "murals",
    "mushrooms",
    "myths",
    "neighborhoods",
    "networks",
    "newspapers",
    "novels",
    "observatories",
    "operas",
    "orchards",
    "owls",
    "paintings",
    "pandemics",
    "parliaments",
    "passports",
    "penguins",
    "pensions",
    "pharmacies",
    "pianos",
    "pipelines",
    "planets",
    "plastics",
    "podcasts",
    "poems",
    "pollinators",
    "ports",
    "pottery",
    "prairies",
    "prisons",
    "proteins",
    "quarries",
    "rabbits",
    "radios",
    "reactors",
    "refugees",
    "reptiles",
    "robots",
    "rockets",
    "ruins",
    "saltmarshes",
    "savannas",
    "schools",
    "sculptures",
    "seeds",
    "sensors",
    "ships",
    "shrines",
    "skyscrapers",
    "smartphones",
    "snowflakes",
    "soils",
    "spacecraft",
    "spiders",
    "stadiums",
    "startups",
    "statues",
    "subways",
    "sunflowers",
    "swamps",
    "symphonies",
    "taxes",
    "temples",
    "textiles",
    "theaters",
    "tornadoes",
    "tortoises",
    "tourism",
    "tractors",
    "treaties",
    "tribes",
    "tulips",
    "typewriters",
    "universities",
    "vaults",
    "villages",
    "violins",
    "volunteers",
    "wages",
    "wetlands",
    "wildfires",
    "wolves",
    "workshops",
    "zoos",
]

FORMS = [
    "story",
    "limerick",
    "haiku",
    "essay",
    "speech",
    "riddle",
    "joke",
    "song",
    "review",
    "letter",
    "blog",
    "post",
]
DOCS = [
    "paragraph",
    "article",
    "review",
    "tweet",
    "email",
    "story",
    "passage",
    "report",
    "abstract",
    "memo",
]
AUDIENCES = [
    "children",
    "teenagers",
    "beginners",
    "students",
    "retirees",
    "engineers",
    "nurses",
    "farmers",
    "tourists",
    "managers",
    "scientists",
    "teachers",
    "parents",
    "investors",
    "gardeners",
]
FIELDS = [
    "biology",
    "economics",
    "history",
    "physics",
    "chemistry",
    "law",
    "medicine",
    "geography",
    "music",
    "sports",
    "politics",
    "art",
    "engineering",
    "psychology",
    "astronomy",
    "agriculture",
    "philosophy",
    "ecology",
]
LANGS = [
    "English",
    "French",
    "Spanish",
    "German",
    "Italian",
    "Portuguese",
    "Dutch",
    "Swedish",
    "Polish",
    "Turkish",
]
TONES = [
    "formal",
    "friendly",
    "playful",
    "serious",
    "persuasive",
    "optimistic",
    "humble",
    "dramatic",
    "calm",
]
STATS = ["mean", "median", "mode", "range", "variance", "maximum", "minimum", "sum", "product"]
THINGS = [
    "cities",
    "fruits",
    "planets",
    "animals",
    "books",
    "movies",
    "rivers",
    "countries",
    "cars",
    "songs",
]
CRITERIA = ["cost", "size", "popularity", "age", "speed", "weight", "color", "difficulty", "safety"]
PRODUCTS = [
    "app",
    "bakery",
    "podcast",
    "startup",
    "backpack",
    "board",
    "game",
    "restaurant",
    "bike",
    "shop",
]
PLANGS = ["Python", "Java", "Rust", "Go", "JavaScript", "C", "Haskell", "Ruby", "Kotlin", "Swift"]
CODE_TASKS = [
    "reverses a string",
    "checks whether a number is prime",
    "merges two sorted lists",
    "counts the vowels in a word",
    "removes duplicates from a list",
    "returns the nth Fibonacci number",
    "parses a date string",
    "finds the longest word in a sentence",
    "computes the factorial of a number",
    "validates an email address",
]
PARTS = ["verbs", "nouns", "adjectives", "adverbs", "subject", "object", "pronouns", "prepositions"]
UNITS = ["miles", "kilometers", "pounds", "kilograms", "gallons", "liters", "inches", "centimeters"]
PEOPLE = [
    "a landlord",
    "a teacher",
    "a doctor",
    "my neighbor",
    "a customer",
    "the manager",
    "a coach",
]
ISSUES = [
    "sarcasm",
    "hate speech",
    "spam",
    "a spelling error",
    "a logical fallacy",
    "personal data",
]
ENTITIES = ["people", "places", "dates", "organizations", "numbers", "products", "emotions"]
MATERIALS = ["bamboo", "recycled", "plastic", "glass", "steel", "cork", "hemp", "leather", "wood"]
ACTIVITIES = [
    "paint a room",
    "bake a loaf of bread",
    "read a long novel",
    "train for a marathon",
    "learn to juggle",
    "plant a vegetable garden",
    "assemble a bookshelf",
    "write a thesis",
]


def _long_tail(size: int = 30_000) -> list[str]:
    """Pseudo-words standing in for the long tail of a real vocabulary (names, jargon)."""
    rng = random.Random(12345)
    onsets = [
        "b",
        "br",
        "c",
        "ch",
        "cl",
        "d",
        "dr",
        "f",
        "fl",
        "g",
        "gr",
        "h",
        "j",
        "k",
        "l",
        "m",
        "n",
        "p",
        "pl",
        "pr",
        "r",
        "s",
        "sh",
        "st",
        "t",
        "th",
        "tr",
        "v",
        "w",
        "z",
    ]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
    codas = ["", "", "n", "r", "s", "l", "m", "x", "nd", "st"]
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice([2, 2, 3, 3, 4])
        words.add(
            "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
            + rng.choice(codas)
        )
    return sorted(words)


TAIL = _long_tail()
# Zipf-like weights: the k-th most frequent word of the tail is drawn with weight 1/k.
TAIL_WEIGHTS = list(itertools.accumulate(1 / (k + 1) for k in range(len(TAIL))))


def _tail_word(rng: random.Random) -> str:
    return rng.choices(TAIL, cum_weights=TAIL_WEIGHTS)[0]


def _noun(rng: random.Random) -> str:
    return rng.choice(NOUNS) if rng.random() < 0.5 else _tail_word(rng)


def _topic(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)} {_noun(rng)}"


def _fill(template: str, rng: random.Random) -> str:
    values = {
        "topic": _topic(rng),
        "topic2": _topic(rng),
        "form": rng.choice(FORMS),
        "form_plural": rng.choice(FORMS) + "s",
        "doc": rng.choice(DOCS),
        "audience": rng.choice(AUDIENCES),
        "audience_single": rng.choice(AUDIENCES).rstrip("s"),
        "field": rng.choice(FIELDS),
        "field2": rng.choice(FIELDS),
        "num": str(rng.choice([2, 3, 4, 5, 6, 7, 10, 12, 50, 100])),
        "lang": rng.choice(LANGS),
        "lang2": rng.choice(LANGS),
        "tone": rng.choice(TONES),
        "stat": rng.choice(STATS),
        "things": rng.choice(THINGS),
        "criterion": rng.choice(CRITERIA),
        "product": rng.choice(PRODUCTS),
        "plang": rng.choice(PLANGS),
        "code_task": rng.choice(CODE_TASKS),
        "part": rng.choice(PARTS),
        "unit": rng.choice(UNITS),
        "unit2": rng.choice(UNITS),
        "person": rng.choice(PEOPLE).strip(),
        "person2": rng.choice(PEOPLE).strip(),
        "issue": rng.choice(ISSUES),
        "entity": rng.choice(ENTITIES),
        "material": rng.choice(MATERIALS),
        "activity": rng.choice(ACTIVITIES),
        "w1": _noun(rng),
        "w2": _noun(rng),
        "w3": _noun(rng),
    }
    return template.format(**values)


MODIFIERS = [
    "about {topic} and {topic2}",
    "for {audience} who care about {topic}",
    "in the style of a {tone} {form}",
    "using examples from {field} and {field2}",
    "with a focus on {topic}",
    "that mentions {w1}, {w2} and {topic}",
    "set in a world of {topic}",
    "as if you were a {tone} expert on {topic2}",
    "based on what you know about {w1} and {w2}",
    "without mentioning {w1} or {topic2}",
]


def _fresh(rng: random.Random) -> str:
    while True:  # realistic lengths: 10 to 32 words
        text = _fresh_any(rng)
        if 10 <= len(text.split()) <= 32:
            return text


def _fresh_any(rng: random.Random) -> str:
    parts = [rng.choice(OPENERS), _fill(rng.choice(TASKS), rng)]
    for _ in range(rng.choice([0, 1, 1, 2])):
        parts.append(_fill(rng.choice(MODIFIERS), rng))
    text = " ".join(p for p in parts if p).strip()
    text = text[0].upper() + text[1:] + "."
    closer = _fill(rng.choice(CLOSERS), rng)
    return f"{text} {closer}".strip()


def _mutate(text: str, rng: random.Random) -> str:
    """A near-duplicate: replace, drop, insert or swap a few words."""
    words = text.split()
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.4:
            words[i] = rng.choice(NOUNS + ADJECTIVES)
        elif op < 0.6 and len(words) > 6:
            del words[i]
        elif op < 0.85:
            words.insert(i, rng.choice(["really", "please", "also", "carefully", "new"]))
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def instruction_stream(seed: int = 0) -> Iterator[str]:
    """An endless deterministic stream of instructions, a quarter of them near-duplicates."""
    rng = random.Random(seed)
    recent: list[str] = []
    while True:
        near_duplicate = bool(recent) and rng.random() < 0.25
        text = _mutate(rng.choice(recent), rng) if near_duplicate else _fresh(rng)
        if len(recent) < 2000:
            recent.append(text)
        else:
            recent[rng.randrange(len(recent))] = text
        yield text


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rouge_score(stream: list[str], threshold: float) -> tuple[list[bool], float, int]:
    """The original scripts' rule with rouge-score: score against the whole pool."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool: list[str] = []
    decisions = []
    pairs = 0
    start = time.perf_counter()
    for candidate in stream:
        scores = [scorer.score(inst, candidate)["rougeL"].fmeasure for inst in pool]
        pairs += len(pool)
        accept = not scores or max(scores) <= threshold
        decisions.append(accept)
        if accept:
            pool.append(candidate)
    return decisions, time.perf_counter() - start, pairs


def run_index(stream: list[str], threshold: float) -> tuple[list[bool], float]:
    """Our filter on the same candidates: the best of 3 runs (the first one warms up)."""
    best = float("inf")
    decisions: list[bool] = []
    for _ in range(3):
        index = SimilarityIndex("rouge", threshold)
        decisions = []
        start = time.perf_counter()
        for candidate in stream:
            accept = index.first_above(candidate) is None
            decisions.append(accept)
            if accept:
                index.add(candidate)
        best = min(best, time.perf_counter() - start)
    return decisions, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", type=int, default=600, help="candidates for rouge-score")
    parser.add_argument("--pool", type=int, default=50_000, help="largest pool size (200000: long)")
    parser.add_argument("--window", type=int, default=2000, help="candidates timed per size")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t = args.threshold

    lengths = []
    gen = instruction_stream(args.seed)
    sample = [next(gen) for _ in range(5000)]
    tok = SimilarityIndex("rouge").tokenizer
    lengths = sorted(len(tok.tokenize(s)) for s in sample)
    print(
        f"stream: seed {args.seed}; tokens per instruction: min {lengths[0]}, median "
        f"{lengths[len(lengths) // 2]}, 90th pct {lengths[int(0.9 * len(lengths))]}, "
        f"max {lengths[-1]}; e.g. {sample[0]!r}, {sample[3]!r}"
    )

    # (a) rouge-score on a prefix, and our index on the same prefix.
    prefix = (
        sample[: args.prefix]
        if args.prefix <= len(sample)
        else [s for _, s in zip(range(args.prefix), instruction_stream(args.seed), strict=False)]
    )
    ref, ref_time, pairs = run_rouge_score(prefix, t)
    ours, ours_time = run_index(prefix, t)
    mismatches = [i for i, (a, b) in enumerate(zip(ref, ours, strict=True)) if a != b]
    per_pair = ref_time / max(pairs, 1)
    print(
        f"\n(a) rouge-score on the first {len(prefix)} candidates: {ref_time:.1f} s, "
        f"{pairs} pairs, {per_pair * 1e6:.1f} us/pair, accepted {sum(ref)}"
    )
    print(
        f"    index on the same candidates: {ours_time * 1e3:.1f} ms, accepted {sum(ours)}; "
        f"speed-up {ref_time / ours_time:,.0f}x"
    )
    print(
        f"    decisions compared: {len(prefix)}, identical: {len(prefix) - len(mismatches)}, "
        f"different: {len(mismatches)}"
    )

    # (b) the whole stream through the index until the pool reaches --pool.
    sizes = [s for s in (1_000, 10_000, 50_000, 200_000) if s <= args.pool]
    index = SimilarityIndex("rouge", t)
    rss_before = _rss_mb()
    stream = instruction_stream(args.seed)
    seen = rejected = 0
    results = []
    start = time.perf_counter()
    print(
        f"\n(b) index on the stream, timing {args.window} candidates at each pool size:\n"
        f"    {'pool':>8} {'cand/s':>10} {'ms/cand':>9} {'rejected':>9} "
        f"{'rouge-score ms/cand (extrap.)':>30} {'speed-up':>9} {'elapsed s':>10}",
        flush=True,
    )
    for size in sizes:
        while len(index) < size:
            candidate = next(stream)
            seen += 1
            if index.first_above(candidate) is None:
                index.add(candidate)
            else:
                rejected += 1
        # Time a window of candidates at this pool size (accepted ones are added: the
        # pool grows by at most `window`, under 1% at 200K).
        window_start = time.perf_counter()
        window_rejected = 0
        for _ in range(args.window):
            candidate = next(stream)
            seen += 1
            if index.first_above(candidate) is None:
                index.add(candidate)
            else:
                rejected += 1
                window_rejected += 1
        per_candidate = (time.perf_counter() - window_start) / args.window
        results.append((size, per_candidate, window_rejected))
        extrapolated = per_pair * size
        print(
            f"    {size:>8} {1 / per_candidate:>10,.0f} {per_candidate * 1e3:>9.3f} "
            f"{window_rejected:>9} {extrapolated * 1e3:>30,.0f} "
            f"{extrapolated / per_candidate:>8,.0f}x {time.perf_counter() - start:>10.1f}",
            flush=True,
        )
    total = time.perf_counter() - start
    print(
        f"    whole stream: {seen} candidates, {len(index)} accepted, {rejected} rejected in "
        f"{total:.1f} s ({seen / total:,.0f} candidates/s overall, "
        f"{index.stats.rebuilds} index rebuilds)"
    )
    s = index.stats
    print(
        f"    work: {s.queries} queries, {s.probed} postings read, {s.pruned} items "
        f"ruled out by bounds, {s.lcs_computed} LCS computed "
        f"({s.lcs_computed / max(s.queries, 1):.1f} per query)"
    )
    print(f"    peak RSS: {_rss_mb():.0f} MB (before the index: {rss_before:.0f} MB)")

    ok = not mismatches
    if results:
        worst = results[-1][1]
        print(
            f"\ntargets: speed-up on the prefix {ref_time / ours_time:,.0f}x (>= 1000x: "
            f"{'met' if ref_time / ours_time >= 1000 else 'MISSED'}); {worst * 1e3:.3f} ms "
            f"per candidate at {results[-1][0]} (<= 5 ms: {'met' if worst <= 0.005 else 'MISSED'})"
        )
    print("decisions identical" if ok else f"DECISIONS DIFFER at candidates {mismatches[:10]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
