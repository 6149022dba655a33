"""A deterministic synthetic instruction stream for the similarity benchmark.

Fresh instructions of 10-30 tokens composed from templates and word lists written here
(no external data), with a Zipf-like long tail of pseudo-words, and a share of
near-duplicates (one to three word edits of an earlier instruction).
"""

from __future__ import annotations

import itertools
import random
import re
import string

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


MORE_TASKS = [
    "draft a {tone} announcement telling {audience} about {topic}",
    "argue for or against the claim that {topic} will replace {topic2}",
    "describe a typical day of someone who studies {topic}",
    "write a {form} from the point of view of {topic}",
    "explain the history of {topic} in {num} short paragraphs",
    "list the tools a {audience_single} needs to work with {topic}",
    "create a checklist for {person} who is starting with {topic}",
    "write a product description for a {product} inspired by {topic}",
    "summarize the debate about {topic} among experts in {field}",
    "invent a board game about {topic} and explain its rules",
    "write {num} interview questions for an expert on {topic}",
    "explain what would happen if {topic} disappeared tomorrow",
    "draft a short news headline and lead about {topic}",
    "rank these {things} by {criterion} and explain the ranking",
    "describe {topic} using only words a {audience_single} would know",
    "write a lesson plan that teaches {topic} to {audience}",
    "give feedback on the following {doc} about {topic}",
    "name {num} famous examples of {topic} and say why they matter",
    "design a poster that promotes {topic} to {audience}",
    "explain the link between {topic} and {field}",
    "write a short mystery in which {topic} is the main clue",
    "turn the following notes about {topic} into a clear {doc}",
    "suggest a research question about {topic} in {field}",
    "write a recipe that a fan of {topic} would enjoy",
    "compose a {tone} toast for a party celebrating {topic}",
    "explain the risks of {topic} for {audience} and how to reduce them",
    "create a glossary of {num} terms related to {topic}",
    "write the opening paragraph of a novel about {topic}",
    "list {num} questions a {audience_single} might ask about {topic}",
    "describe how {topic} changed over the last {num} years",
    "explain why {audience} often misunderstand {topic}",
    "write a job advert for a specialist in {topic}",
    "propose a budget for a project on {topic} with {num} items",
    "imagine a city built around {topic} and describe it",
    "write a {tone} complaint letter to {person} about {topic}",
]

SYNONYMS = {
    "write": ["write", "compose", "draft", "produce", "create", "pen"],
    "explain": ["explain", "clarify", "describe", "illustrate", "walk through"],
    "summarize": ["summarize", "condense", "recap", "digest", "shorten"],
    "give": ["give", "provide", "offer", "share", "present"],
    "list": ["list", "enumerate", "name", "write down", "collect"],
    "describe": ["describe", "characterize", "portray", "depict", "explain"],
    "create": ["create", "build", "make", "put together", "design"],
    "suggest": ["suggest", "propose", "recommend", "come up with", "brainstorm"],
    "generate": ["generate", "produce", "write", "create", "invent"],
    "find": ["find", "compute", "calculate", "determine", "work out"],
    "identify": ["identify", "find", "point out", "mark", "highlight"],
    "compare": ["compare", "contrast", "weigh", "evaluate", "assess"],
}

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
    "keeping in mind the needs of {audience}",
    "drawing on {field} where it helps",
    "with one surprising fact about {topic2}",
    "and relate it to {topic2}",
    "for a newsletter on {topic2}",
]


def _long_tail(size: int = 30_000) -> list[str]:
    """Pseudo-words standing in for the long tail of a real vocabulary (names, jargon)."""
    rng = random.Random(12345)
    onsets = [*"bcdfghjklmnprstvwz", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st"]
    onsets += ["th", "tr"]
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
# Zipf-like weights (flattened at the head): the k-th word is drawn with weight 1/(k + 100).
TAIL_WEIGHTS = list(itertools.accumulate(1 / (k + 100) for k in range(len(TAIL))))
ALL_TASKS = TASKS + MORE_TASKS


def _tail_word(rng: random.Random) -> str:
    return rng.choices(TAIL, cum_weights=TAIL_WEIGHTS)[0]


def _noun(rng: random.Random) -> str:
    return rng.choice(NOUNS) if rng.random() < 0.5 else _tail_word(rng)


LINKS = ["of", "in", "from", "near", "for", "at", "under", "with", "by", "around"]


def _topic(rng: random.Random) -> str:
    # Real topics are specific: an adjective, a noun, often a qualifier from the long tail.
    adjective = rng.choice(ADJECTIVES)
    if rng.random() < 0.3:
        return f"{adjective} {_noun(rng)}"
    return f"{adjective} {_noun(rng)} {rng.choice(LINKS)} {_tail_word(rng)}"


_SLOTS = {
    "form": FORMS,
    "doc": DOCS,
    "audience": AUDIENCES,
    "field": FIELDS,
    "field2": FIELDS,
    "lang": LANGS,
    "lang2": LANGS,
    "tone": TONES,
    "stat": STATS,
    "things": THINGS,
    "criterion": CRITERIA,
    "product": PRODUCTS,
    "plang": PLANGS,
    "code_task": CODE_TASKS,
    "part": PARTS,
    "unit": UNITS,
    "unit2": UNITS,
    "person": PEOPLE,
    "person2": PEOPLE,
    "issue": ISSUES,
    "entity": ENTITIES,
    "material": MATERIALS,
    "activity": ACTIVITIES,
}
_NUMS = ["2", "3", "4", "5", "6", "7", "8", "10", "12", "15", "20", "50", "100"]


def _fill(template: str, rng: random.Random) -> str:
    return _fill_counted(template, rng)[0]


def _fill_counted(template: str, rng: random.Random) -> tuple[str, int]:
    """The filled template and how many specific words (adjectives, nouns, tail) it got."""
    # Draw only the slots the template uses: cheaper, and the same for every template.
    values: dict[str, str] = {}
    specific = 0
    for name in _slot_names(template):
        if name in _SLOTS:
            values[name] = rng.choice(_SLOTS[name])
        elif name in ("topic", "topic2"):
            values[name] = _topic(rng)
            specific += 2 if values[name].count(" ") == 1 else 3
        elif name in ("w1", "w2", "w3"):
            values[name] = _noun(rng)
            specific += 1
        elif name == "num":
            values[name] = rng.choice(_NUMS)
        elif name == "form_plural":
            values[name] = rng.choice(FORMS) + "s"
        elif name == "audience_single":
            values[name] = rng.choice(AUDIENCES).rstrip("s")
    return template.format(**values), specific


_SLOT_CACHE: dict[str, list[str]] = {}


def _slot_names(template: str) -> list[str]:
    names = _SLOT_CACHE.get(template)
    if names is None:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
        _SLOT_CACHE[template] = names
    return names


def _fresh(rng: random.Random) -> str:
    """A new instruction of 10 to 30 tokens, at least 30% of them specific words.

    Real instructions differ mostly in what they are about; a stream whose instructions are
    mostly template words would saturate (most fresh candidates scoring above 0.7 with an
    earlier one) long before 200K, unlike real data.
    """
    while True:
        text, specific = _fresh_any(rng)
        n = len(_TOKEN.findall(text.lower()))
        if 10 <= n <= 30 and specific >= 0.3 * n:
            return text


def _fresh_any(rng: random.Random) -> tuple[str, int]:
    task_template = rng.choice(ALL_TASKS)
    task, specific = _fill_counted(task_template, rng)
    verb, _, rest = task.partition(" ")
    if verb in SYNONYMS:
        task = f"{rng.choice(SYNONYMS[verb])} {rest}"
    parts = [rng.choice(OPENERS), task]
    for _ in range(rng.choice([0, 1, 1, 2])):
        modifier, count = _fill_counted(rng.choice(MODIFIERS), rng)
        parts.append(modifier)
        specific += count
    text = " ".join(p for p in parts if p).strip()
    text = text[0].upper() + text[1:] + "."
    if rng.random() < 0.4:
        closer, count = _fill_counted(rng.choice(CLOSERS), rng)
        text = f"{text} {closer}".strip()
        specific += count
    return text, specific


def _mutate(text: str, rng: random.Random) -> str:
    """A near-duplicate: replace, drop, insert or swap one to three words."""
    words = text.split()
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
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


_TOKEN = re.compile(r"[a-z0-9]+")


class InstructionStream:
    """A deterministic stream of instructions: fresh ones and near-duplicates of earlier ones.

    ``next_fresh()`` draws a new instruction; ``next()`` is a near-duplicate (an edit of any
    earlier fresh instruction) with probability ``near_duplicates``, else a fresh one.
    """

    def __init__(self, seed: int = 0, near_duplicates: float = 0.15) -> None:
        self.rng = random.Random(seed)
        self.near_duplicates = near_duplicates
        self.history: list[str] = []

    def next_fresh(self) -> str:
        text = _fresh(self.rng)
        self.history.append(text)
        return text

    def next(self) -> tuple[str, bool]:
        """A candidate and whether it is a near-duplicate."""
        if self.history and self.rng.random() < self.near_duplicates:
            return _mutate(self.rng.choice(self.history), self.rng), True
        return self.next_fresh(), False
