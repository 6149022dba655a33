"""The ``non_text_modality`` filter's nouns: what a task can point at, and where it points.

Pictures and recordings (``_SEEN``, ``_HEARD``), files and links, with the patterns that
find one pointed at ("this photo", "the chart below", "Given a photo of ...", "Figure 2"),
the figures of speech that are not ("the big picture"), and the reasons a rejection gives.
:mod:`selfinstruct_plugins.modality` holds the rule that uses them.
"""

from __future__ import annotations

import re


def _alt(*parts: str) -> str:
    return "(?:" + "|".join(parts) + ")"


SEE = "to see a picture it was not given"
HEAR = "to hear or watch a recording it was not given"
DRAW = "to produce a picture, chart or other visual"
SOUND = "to produce sound or video"
OPEN = "to open a file, link or account outside the conversation"
WEB = "to browse or search the web"
WORLD = "to act in the physical world"

# After a noun: the noun is the head of its phrase (not "video game", "image processing").
_HEAD_END = (
    r"(?=\s*(?:[.,;:?!)]|$)|['\u2019]s\b|\s+(?:below|above|attached|provided|shown|here|and|or|but|of|in"
    r"|on|at|to|for|with|from|that|which|where|who|whose|i|you|we|he|she|it|they|is|are|was"
    r"|were|has|have|had|does|do|did|shows?|depicts?|displays?|illustrates?|represents?"
    r"|contains?|so|then|carefully|closely|again|now|please|into|as|about|looks?|tells?"
    r"|says?|indicates?|suggests?|reveals?|features?|using|showing|depicting|comparing"
    r"|explaining|illustrating|highlighting|representing|based|like|advertising|promoting"
    r"|announcing|celebrating|featuring|displaying|summari[sz]ing|outlining|describing|listing"
    r"|tracking|inviting|encouraging|warning|teaching|demonstrating|capturing|portraying"
    r"|visuali[sz]ing|titled|entitled|called|named|labell?ed|made|drawn|designed|inspired"
    r"|meant|aimed|intended|suitable|showcasing|urging|reminding|sounds?|seems?|feels?"
    r"|makes?|means?|needs?|conveys?|evokes?|reminds?)\b|\s+\w+ing\s*(?:[.,;:?!]|$))"
)
# Up to N modifier words between a determiner and its noun: "the two", "a simple labelled".
_STOP = (
    r"(?:a|an|the|this|that|these|those|of|for|to|in|on|at|with|from|about|and|or|by|as"
    r"|into|which|who|whose|is|are|was|were|be|i|you|we|it|my|your|our)\b"
)


def _mods(n: int) -> str:
    return rf"(?:(?!{_STOP})[\w'\u2019-]+\s+){{0,{n}}}"


# Pictures and recordings a task can point at.
_SEEN = (
    r"images?|pictures?|pics?|photos?|photographs?|snapshots?|screenshots?|selfies?"
    r"|paintings?|drawings?|sketch(?:es)?|illustrations?|artworks?|charts?|graphs?"
    r"|(?:scatter|line|box|bar|dot|contour|surface|residual|density|violin) plots?"
    r"|diagrams?|flowcharts?|infographics?|maps?|logos?|x-rays?|(?:\w+ )?scans?|posters?"
    r"|memes?|gifs?|slides?|thumbnails?|cartoons?|comics?|murals?|sculptures?"
)
_HEARD = (
    r"(?:video|audio|sound|film|movie|music) (?:clips?|files?|recordings?|messages?)"
    r"|podcast episodes?|voice (?:notes?|messages?|recordings?|memos?)|music videos?"
    r"|videos?|clips?|footage|recordings?|audio|voicemails?|podcasts?|songs?|tracks?"
)
_MEDIA = _alt(_HEARD, _SEEN)
_HEARD_RE = re.compile(rf"(?<![\w-])(?:{_HEARD})(?![\w-])", re.IGNORECASE)
_SEEN_RE = re.compile(rf"(?<![\w-])(?:{_SEEN})(?![\w-])", re.IGNORECASE)
_DOCS = r"files?|attachments?|pdfs?|spreadsheets?|zip files?|folders?|word documents?"
_WEB_THINGS = r"links?|urls?|websites?|web ?pages?|web ?sites?"

_FIGURATIVE_MEDIA = re.compile(
    r"\b(?:(?:big|bigger|whole|full|overall|larger|wider|complete|clear|clearer|rosy|bleak)"
    r"\s+picture|(?:public|self|body|brand|corporate|mirror|professional)[\s-]+image"
    r"|picture\s+of\s+(?:what|how|life|health|the\s+(?:future|past|economy|situation|state"
    r"|market|world))|image\s+of\s+[^.?!]{0,40}\b(?:in|throughout|across)\s+(?:\w+\s+){0,2}"
    r"(?:literature|novels?|fiction|poetry|poems?|media|films?|movies|cinema|art|culture"
    r"|society|history|press|advertising|television|tv|news|politics|mythology)"
    r"|graph\b[^.?!]{0,60}\b(?:edges?|nodes?|vertices|vertex|adjacency)\b"
    r"|(?:put|puts|putting)\b[^.?!]{0,30}\bon\s+the\s+map"
    r"|(?:image|picture)s?\s+(?:that\s+)?(?:comes?|springs?|pops?)\s+(?:in)?to\s+(?:your\s+)?mind"
    r"|mental\s+(?:image|picture)|(?:image|picture)\s+in\s+your\s+(?:mind|head)"
    r"|mind's\s+eye)",
    re.IGNORECASE,
)
# Output that is text even though it renders as a picture, or is described in words.
_TEXT_FORM = re.compile(
    r"\b(?:code|coding|algorithm|regex|sql|snippet|python|javascript|typescript|java|c\+\+"
    r"|rust|golang|bash|html|css|matplotlib|seaborn|plotly|ggplot2?|d3\.js|opencv|tikz|latex"
    r"|mermaid|graphviz|plantuml|svg|ascii|emojis?|markdown|text characters"
    r"|keyboard characters|verbally|in writing|in prose|text-based|written description"
    r"|(?:in|with|using|through)\s+(?:\w+\s+)?words)\b",
    re.IGNORECASE,
)

# "Write a function that finds faces in the image": the image is the program's, not the model's.
_CODE_TASK = re.compile(
    r"\b(?:write|implement|create|develop|build|design|generate|give|provide|train)\b"
    r"[^.?!]{0,40}\b(?:function|program|script|code|class|method|algorithm|regex|query"
    r"|snippet|app|api|model|classifier|neural\s+network|pipeline|macro)\b",
    re.IGNORECASE,
)
_POINTING = re.compile(
    # "this photo", "the attached chart", "these two photographs", "the above graph"
    r"(?<![\w-])(?:this|these|that|those|each|both|the\s+(?:following|given|provided|above|below"
    r"|accompanying|enclosed|uploaded|linked|attached)|following|above|below)\s+"
    + _mods(2)
    + rf"(?P<noun>{_MEDIA}|figure|{_DOCS}|{_WEB_THINGS})(?![\w-])"
    + _HEAD_END
    # "the image below", "the photo I sent", "the voicemail attached"
    + r"|(?<![\w-])(?:the|this|these|that|those|my|our)\s+"
    + _mods(2)
    + rf"(?P<noun2>{_MEDIA}|figure|{_DOCS}|documents?|reports?|articles?|{_WEB_THINGS})"
    r"\s+(?:(?:below|above|attached|provided|shown|here|linked|embedded|included|enclosed"
    r"|uploaded)\b|(?:that\s+)?i\s+(?:just\s+|have\s+"
    r"|'ve\s+|\u2019ve\s+)?(?:sent|shared|uploaded|attached|posted|took|recorded|made|drew"
    r"|linked|gave|forwarded)\b|(?:that\s+)?you\s+were\s+(?:sent|given|shown)\b)"
    # "Here is a photo of my room", "I've included two screenshots"
    + r"|\b(?:here\s+(?:is|are)|here's|here\u2019s|i(?:'ve|\u2019ve|\s+have)\s+(?:attached|included"
    r"|shared|uploaded|sent|added)|i(?:\s+am|'m|\u2019m)?\s+(?:attaching|sharing|uploading"
    r"|sending|including)(?:\s+you)?|(?:attached|enclosed|below|above)\s+(?:is|are)"
    r"|(?<=\()see(?:\s+the)?)\s+(?:(?:a|an|the|my"
    r"|our|some|two|three)\s+)?"
    + _mods(2)
    + rf"(?P<noun3>{_MEDIA}|{_DOCS})(?![\w-])"
    # "Given a photo of a room, list ...": the task's input is a picture
    + r"|\b(?:given|provided\s+with|for\s+each|from\s+each)\s+(?:a|an|one|two|three|some"
    r"|several)\s+"
    + _mods(1)
    + rf"(?P<noun4>{_MEDIA})(?![\w-])"
    + _HEAD_END
    # "Figure 2", "Fig. 3"
    + r"|\b(?:fig\.|figure)\s*\d",
    re.IGNORECASE,
)


def _spellings(pattern: str) -> set[str]:
    """Every text the noun ``pattern`` matches, with each ``\\w+``/``\\s`` run as a space.

    Handles what the noun patterns use: letters, ``[..]`` classes, ``(?:..|..)`` groups,
    ``?``. Words must come from the spellings, not the pattern's source: "sketch(?:es)?"
    holds the letters "sketch" and "es", never the word "sketches", and a word set read off
    the source let "Describe these sketches." through.
    """
    spellings, end = _expand(pattern, 0)
    if end != len(pattern):
        raise ValueError(f"unbalanced ')' at {end} in {pattern!r}")
    return spellings


def _expand(pattern: str, at: int) -> tuple[set[str], int]:
    """The spellings of the alternation starting at ``at``, up to its closing ``)`` or end."""
    branches: set[str] = set()
    current = {""}
    while at < len(pattern) and pattern[at] != ")":
        char = pattern[at]
        if char == "|":
            branches |= current
            current, at = {""}, at + 1
            continue
        if pattern.startswith("(?:", at):
            atom, at = _expand(pattern, at + 3)
            at += 1  # the ")"
        elif char == "[":
            close = pattern.index("]", at)
            atom, at = set(pattern[at + 1 : close]), close + 1
        elif char == "\\":
            escaped = pattern[at + 1]
            atom = {" "} if escaped in "wsd" else {escaped}
            at += 2
        else:
            atom, at = {char}, at + 1
        if at < len(pattern) and pattern[at] in "+*":
            at += 1  # only after \\w or \\s here: one space stands for the run
        if at < len(pattern) and pattern[at] == "?":
            atom, at = atom | {""}, at + 1
        current = {head + tail for head in current for tail in atom}
    return branches | current, at


# Every word of every spelling of the noun patterns above; a text without one of them (or
# its singular) cannot match _POINTING or _THE_MEDIA, so those two slow scans are skipped.
_NOUN_WORDS = frozenset(
    word
    for part in (_SEEN, _HEARD, _DOCS, _WEB_THINGS, "figure|fig|documents|reports|articles")
    for spelling in _spellings(part)
    for word in re.findall(r"[a-z]+", spelling.lower())
)
_WORD = re.compile(r"[a-z]+")
_DOC_NOUN = re.compile(rf"{_DOCS}|documents?|reports?|articles?", re.IGNORECASE)
_WEB_NOUN = re.compile(_WEB_THINGS, re.IGNORECASE)


# Whatever is attached, enclosed or uploaded is outside the text, whatever it is.
_ATTACHED = re.compile(
    r"\b(?:the|this|these|my|our)\s+(?:attached|enclosed|uploaded|accompanying)\s+"
    rf"(?P<noun>[\w-]+(?:\s+(?!{_STOP})[\w-]+)?)"
    r"|\b(?:i(?:'ve|\u2019ve| have)?\s+(?:just\s+)?(?:attached|uploaded))\b"
    r"|\bsee\s+(?:the\s+)?attachments?\b",
    re.IGNORECASE,
)
# One of these is in every match of _ATTACHED (in an ASCII text, lower-cased).
_ATTACHED_WORDS = ("attach", "enclosed", "uploaded", "accompanying")
# "describe the image", "in the picture", "according to the chart", "in my photo"
_THE_MEDIA = re.compile(
    r"(?<![\w-])(?:describe|caption|analy[sz]e|interpret|summari[sz]e|transcribe|explain"
    r"|examine|inspect|study|look\s+at|watch|view|listen\s+to|hear|rate|review|critique"
    r"|evaluate|judge|translate|classify|label|title|identify|edit|crop|retouch|resize|rotate"
    r"|flip|brighten|darken|sharpen|blur|enhance|restore|upscale|trim|mute|dub|subtitle"
    r"|colou?ri[sz]e|read|compare|given|using|use|see|check|find|choose|select|pick|match"
    r"|sort|rank|group|count|in|on|from|at|into|within|inside|among|between|across|for"
    r"|throughout|behind|according\s+to|based\s+on|shown\s+in|depicted\s+in|visible\s+in"
    # what is in a picture or recording, not its history: "the colours of the photo"
    r"|(?:which|one|each|all|any|none|both|some|many|most|first|second|third|last|half|top"
    r"|bottom|left|right|corner|cent(?:er|re)|background|foreground|quality|resolution"
    r"|composition|lighting|colou?rs?|mood|tone|tempo|key|genre|subject|contents?|lyrics"
    r"|transcript|speakers?|singers?|people|persons?|objects?|style|caption|title|parts?"
    r"|details?|text|words|length|duration|size|edges?|side|end|beginning|middle|rest)"
    r"\s+of)\s+"
    r"(?:the|my|our)\s+"
    + _mods(1)
    + rf"(?P<noun>{_MEDIA})(?![\w-])"
    + _HEAD_END
    # ... but not a well-known one: "Describe the map of the London Underground"
    + r"(?!\s+of\s+(?:the\s+)?(?-i:[A-Z]))"
    # "What does the map show?", "the line graph shows"
    + r"|(?<![\w-])(?:the|this)\s+"
    + _mods(1)
    + rf"(?P<noun2>{_MEDIA})\s+"
    r"(?:shows?|depicts?|displays?|illustrates?|represents?|indicates?|reveals?)\b",
    re.IGNORECASE,
)
_PERCEIVE = re.compile(
    r"\bwhat\s+(?:do\s+|can\s+|did\s+)?you\s+(?:can\s+)?(?:see|hear|notice|smell)\b"
    r"(?!\s+(?:as|in\s+(?:the|this)\s+(?:text|sentence|passage|poem|story|code)))"
    r"|\byou\s+can\s+(?:see|hear)\s+(?:in|on|out|from|outside|around)\b"
    # "After watching the trailer, ...", "While listening to this song, ..."
    r"|\b(?:after|while|before|when|by|having)\s+(?:watching|watched|listening\s+to"
    r"|listened\s+to|viewing|viewed|looking\s+at|looked\s+at|hearing|heard)\s+(?:the|this"
    r"|these|that|those|my|our)\s+(?:[\w-]+\s+)?(?:" + _MEDIA + r"|trailers?|movies?|films?"
    r"|shows?|episodes?|lectures?|talks?|speech(?:es)?|games?|match(?:es)?|performances?"
    r"|documentar(?:y|ies))\b",
    re.IGNORECASE,
)
_PERCEIVE_WORDS = ("you", "watch", "listen", "view", "look", "hear")
_WEBSITE_USE = re.compile(
    r"\b(?:checking|visiting|browsing|searching|consulting|looking\s+(?:it\s+)?up\s+on|using)"
    r"\s+(?:a|an|the|this|some|any)\s+(?:[\w-]+\s+)?(?:website|web\s?site|search\s+engine"
    r"|web\s?page|news\s+site)\b",
    re.IGNORECASE,
)
_WEBSITE_USE_WORDS = ("web", "site", "search")
_SURROUNDINGS = re.compile(
    r"\b(?:near\s+(?:me|us|my\s+(?:house|home|office|location))|in\s+my\s+area"
    r"|where\s+i\s+am\s+(?:now|right\s+now)|my\s+current\s+location"
    r"|(?:out|outside)\s+(?:of\s+)?(?:your|my)\s+window|the\s+room\s+you\s+are"
    r"|your\s+(?:surroundings|current\s+location)"
    r"|(?:weather|temperature)\s+outside|outside\s+right\s+now)\b",
    re.IGNORECASE,
)
_SURROUNDINGS_WORDS = (
    "near",
    "area",
    "where",
    "location",
    "window",
    "room",
    "surroundings",
    "outside",
)
_URL = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:com|org|net|io|ly|co|gov|edu)/\S*",
    re.IGNORECASE,
)
_URL_VERB = re.compile(
    r"\b(?:visit|go\s+to|open|read|summari[sz]e|review|check|browse|look\s+at|click"
    r"|analy[sz]e|watch|listen|download|what\s+(?:is|does)\s+(?:on|at)|tell\s+me\s+what)\b",
    re.IGNORECASE,
)
