"""The ``non_text_modality`` filter: tasks a text-only model cannot do.

It is this project's addition, on by default and ordered after the
blacklist. It rejects an instruction when *doing* the task needs something a text model
does not have, and lets it through when the task only *mentions* such a thing. The rule:

Rejected (the reason names the need):

- **seeing or hearing something it points at**: "this photo", "the image below", "the
  attached chart", "in the picture", "the video I sent", "Figure 2", "what you see",
  "listen to ...", "watch the video". A thing the instruction points at is not in the text,
  so it is rejected even when the instruction says what is in it ("Give a caption for this
  photo of a sunset" is rejected: the caption would be for a picture the model cannot see).
  So is a task whose input is a picture: "Given a photo of a room, list the furniture".
- **producing a picture, chart or sound**: draw, sketch, paint, plot, graph, diagram,
  animate, visualise; create, make, generate or design an image, chart, diagram, map,
  logo, poster, infographic, video, animation, melody or other music; answer "with a
  diagram"; sing, hum, record, film, play music, read aloud.
- **opening what is outside the conversation**: an attached or uploaded file, a PDF or
  spreadsheet it is pointed at, a link or URL, a website; browsing or searching the web;
  the user's inbox, calendar, computer or phone; downloading, uploading, installing.
- **acting in the physical world or for someone**: call, text or email someone; send or
  mail something; go, visit, drive; buy, order, book, pay, rent; cook, bake, clean, water
  the plants; take a photo; set an alarm, turn off the lights; "near me", "outside"; and
  any other imperative done to a household thing ("Knock on the door", "Check the oven").

Let through:

- the non-text thing as a topic: explaining, comparing or advising about it, or how to make
  or use it ("Explain how pie charts can mislead readers", "Describe the steps to take a
  screenshot", "What is a bar graph used for?", "How do I send a fax?");
- text about, for or inspired by a thing the instruction itself describes in words, with an
  indefinite article ("Write a poem about a photograph of your grandmother", "Suggest a
  caption for a photo of a beach", "Write alt text for an image of a dog in the snow");
- well-known works known from text ("Describe the Mona Lisa", "the plot of Hamlet");
- the text of a message or plan, which the user sends or carries out ("Write an email to my
  manager", "Plan a trip to Rome"), and text meant to render as a picture (matplotlib or
  Mermaid code, ASCII art, a table), or a graph given as its edges;
- figurative uses: paint a picture with words, map out a plan, draw a conclusion, draw up a
  contract, sketch out a timeline, chart a course, the big picture, public image, plot a
  novel, file a complaint, walk me through, go over, look at the problem.

How: imperative verbs count only at the start of a clause (the start of a sentence, after
"please", "can you", "I want you to", or after "and"/"then" when no "how", "why",
"steps to"... came before in the sentence), so "Explain how to draw a cat" is a mention and
"Write a haiku and draw a picture for it" is a request. Pointing at a picture or recording
counts anywhere. Everything is a precompiled regular expression: the filter runs on every
candidate (tens of microseconds each). ``bench/non_text_modality.py`` measures precision
and recall on the labelled sets in ``tests/data/non_text_modality/``. Known misses: a
pointed-at noun followed by a word the patterns cannot tell from a compound ("the audio
male or female?", "Make the photo black and white").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from selfinstruct_async import BaseFilter, Rejection, hookimpl


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
# Every word spelled out in the noun patterns above; a text without one of them (or its
# singular) cannot match _POINTING or _THE_MEDIA, so those two slow scans are skipped.
_NOUN_WORDS = frozenset(
    re.findall(r"[a-z]+", f"{_MEDIA} {_DOCS} {_WEB_THINGS} figure fig documents reports articles")
)
_WORD = re.compile(r"[a-z]+")
_DOC_NOUN = re.compile(rf"{_DOCS}|documents?|reports?|articles?", re.IGNORECASE)
_WEB_NOUN = re.compile(_WEB_THINGS, re.IGNORECASE)


def _names_a_medium(lowered: str) -> bool:
    return any(w in _NOUN_WORDS or w + "s" in _NOUN_WORDS for w in _WORD.findall(lowered))


# Whatever is attached, enclosed or uploaded is outside the text, whatever it is.
_ATTACHED = re.compile(
    r"\b(?:the|this|these|my|our)\s+(?:attached|enclosed|uploaded|accompanying)\s+"
    rf"(?P<noun>[\w-]+(?:\s+(?!{_STOP})[\w-]+)?)"
    r"|\b(?:i(?:'ve|\u2019ve| have)?\s+(?:just\s+)?(?:attached|uploaded))\b"
    r"|\bsee\s+(?:the\s+)?attachments?\b",
    re.IGNORECASE,
)
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
_WEBSITE_USE = re.compile(
    r"\b(?:checking|visiting|browsing|searching|consulting|looking\s+(?:it\s+)?up\s+on|using)"
    r"\s+(?:a|an|the|this|some|any)\s+(?:[\w-]+\s+)?(?:website|web\s?site|search\s+engine"
    r"|web\s?page|news\s+site)\b",
    re.IGNORECASE,
)
_SURROUNDINGS = re.compile(
    r"\b(?:near\s+(?:me|us|my\s+(?:house|home|office|location))|in\s+my\s+area"
    r"|where\s+i\s+am\s+(?:now|right\s+now)|my\s+current\s+location"
    r"|(?:out|outside)\s+(?:of\s+)?(?:your|my)\s+window|the\s+room\s+you\s+are"
    r"|your\s+(?:surroundings|current\s+location)"
    r"|(?:weather|temperature)\s+outside|outside\s+right\s+now)\b",
    re.IGNORECASE,
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

# --- imperative verbs, matched only at the start of a clause

_LEAD = (
    r"(?:(?:please|kindly|now|then|also|next|first|finally|first\s+of\s+all|go\s+ahead\s+and"
    r"|try\s+to|(?:can|could|would|will)\s+you(?:\s+please)?(?:\s+be\s+able\s+to)?"
    r"|i\s+(?:want|need|would\s+like|'d\s+like|\u2019d\s+like)\s+you\s+to|help\s+me(?:\s+to)?"
    r"|let's|let\u2019s|let\s+us|you\s+(?:should|must|need\s+to|have\s+to|will)"
    r"|your\s+task\s+is\s+to|the\s+task\s+is\s+to|you\s+are\s+to)\s*,?\s+)*"
)
_ART = r"(?:(?:me|us)\s+)?(?:(?:a|an|the|some|one|two|three|four|five|\d+|this|my|your|our)\s+)?"
_VISUAL = (
    r"(?:images?|pictures?|photos?|photographs?|drawings?|sketch(?:es)?|paintings?"
    r"|illustrations?|artworks?|portraits?|cartoons?|comic(?:\s+strip)?s?|charts?|graphs?"
    r"|(?:scatter|line|box|bar|dot|contour|surface|3d)\s+plots?|diagrams?|flow\s?charts?"
    r"|infographics?|logos?|icons?|posters?|flyers?|banners?|(?<!road\s)maps?|mind[\s-]maps?"
    r"|storyboards?|animations?|gifs?|memes?|video(?:\s+(?:clip|tutorial|message|diary|blog"
    r"|montage|essay|ad|advertisement|commercial|recording|tour|greeting|call))?s?"
    r"|audio(?:\s+(?:clip|file|recording|track))?s?|recordings?|podcast(?:\s+episode)?s?"
    r"|melod(?:y|ies)|tunes?|soundtracks?|ringtones?|collages?|murals?|sculptures?"
    r"|3d\s+models?|floor\s+plans?|covers?|visuals?|visuali[sz]ations?|graphics?"
    r"|visual\s+(?:representation|aid|guide|summary)s?|wallpapers?|thumbnails?|stickers?"
    r"|piece\s+of\s+music|music|symphon(?:y|ies)|instrumental|(?:short\s+)?films?|movies?"
    r"|documentar(?:y|ies)|vlogs?|trailers?)(?![\w-])"
)
_DRAW_VERBS = _alt(
    r"draw(?!\s+(?:up|on|upon|from|out|in|attention|inspiration|near|closer|to\s+a\s+close"
    r"|(?:(?:a|the|some|any|your|clear|useful|logical|meaningful|interesting|three|two)\s+)?"
    r"(?:conclusions?|parallels?|comparisons?|inferences?|lessons?|distinctions?"
    r"|connections?|analog(?:y|ies)|contrasts?|insights?|links?|lines?\s+between|breath"
    r"|a\s+blank)))",
    r"sketch(?=\s+(?:a|an|the|my|your|this|some|me|us|out)\b)"
    r"(?!\s+(?:out|(?:a|an|the)\s+(?:(?!floor\b)[\w-]+\s+)?(?:outline|plan|overview|summary"
    r"|profile|proposal|strategy|timeline|argument|ideas?|biography|agenda|framework"
    r"|roadmap|scenario|brief|draft|history|description|plot|story|character)s?\b))",
    r"paint(?=\s+(?:a|an|the|my|your|this|these|some|me|us|\d+|it|them|over|with)\b)"
    r"(?!\s+(?:a|an|the)\s+(?:(?:vivid|clear|bleak|rosy|grim|verbal|word|compelling|accurate"
    r"|complete|full|realistic|positive|negative|detailed|rich|colou?rful|dark|bright|better"
    r"|verbal|word|mental|written|literary|grim|bleak|rosy"
    r"|fuller|broad|different|mental|sobering|stark|optimistic|pessimistic|hopeful|powerful)"
    r"\s|(?:\w+\s+)?picture\s+(?:of\s+(?:what|how|life|the\s+(?:future|past|world|economy"
    r"|situation))|with|in|using)\b))",
    r"plot(?!\s+(?:out|twists?|holes?|summar(?:y|ies)|structure|devices?|armou?r"
    r"|(?:a|the|your|an)\s+(?:[\w-]+\s+)?(?:course|story|storyline|narrative|novel|heist"
    r"|scheme|plan|mystery|murder|twist|revenge|strategy|book|screenplay|script|film|movie"
    r"|episode|arc|thriller|romance|tale|plot|escape|coup|comeback|route|path)s?\b))",
    r"graph(?!\s+(?:theory|databases?|neural|networks?|algorithms?|traversals?|colou?ring"
    r"|isomorphism|data|structures?))",
    r"chart(?=\s+(?:a|an|the|my|your|this|these|how|\w+'s)\b)"
    r"(?!\s+(?:a|an|the|your|my|our|their)\s+(?:[\w-]+\s+)?(?:course|path|way|future|journey"
    r"|history|evolution|rise|fall|development|career|direction|route|strategy|plan)s?\b)",
    r"diagram",
    r"animate",
    r"illustrate(?=\s+(?:a|an|the|this|my|your)\s+(?:[\w']+\s+)?(?:book|story|cover|poem"
    r"|page|comic|scene|card|poster|menu|fairy\s+tale)s?\b)",
    r"visuali[sz]e(?!\s+(?:yourself|your|what|how|success|a\s+world|the\s+future|being))",
    r"(?:create|make|generate|produce|design|build|construct|render|give\s+me|show\s+me"
    r"|show\s+us|provide|prepare|develop|come\s+up\s+with|put\s+together|craft|compose"
    r"|draw\s+up|print|add|include|attach|insert|embed|send\s+me)\s+"
    + _ART
    + _mods(3)
    + _VISUAL
    + _HEAD_END,
    r"show\s+(?:me|us)\s+what\b[^.?!]{0,60}\blooks?\s+like",
    # "Illustrate the water cycle with a diagram", "Represent the data as a pie chart"
    r"(?:illustrate|explain|show|present|represent|support|answer|respond|depict|demonstrate"
    r"|summari[sz]e|display|visuali[sz]e|design|convert|turn|transform|make|create|map"
    r"|compare|teach|outline|break\s+down|lay\s+out)\b[^.?!]{0,80}?\b(?:(?:with|using|via"
    r"|through|including|and\s+include)\s+(?:(?:a|an|one|some|two|three)\s+)?|(?:as|into|in"
    r"|in\s+the\s+form\s+of|alongside)\s+(?:a|an|one|some|two|three)\s+)"
    + _mods(2)
    + _VISUAL
    + _HEAD_END,
)
_SOUND_VERBS = _alt(
    r"sing(?!\s+(?:the\s+)?praises)(?![\w-])",
    r"hum|whistle|dance(?=\s+(?:to|with|the|a|like|for|around|in)\b|\s*[.!]|$)",
    r"(?:read|say|speak|recite|pronounce|sing)\b[^.?!]{0,60}\b(?:aloud|out\s+loud)\b",
    r"record\s+(?:(?:a|an|the|your|yourself|my|this|some)\s+)?"
    + _mods(2)
    + r"(?:video|voice|audio|songs?|podcast|clips?|tracks?|sounds?|vlog|voice-?over|yourself"
    r"|message|demo|album|cover)",
    r"film(?=\s+(?:a|an|the|your|yourself|my|this|it|some|me|us)\b)",
    r"videotape|photograph(?=\s+(?:a|an|the|your|yourself|my|this|it|some|me|us)\b)",
    r"play\s+(?:me\s+|us\s+)?(?:(?:a|an|the|some|this|my|your|that)\s+)?"
    + _mods(2)
    + r"(?:songs?|music|tunes?|tracks?|videos?|audio|recordings?|sounds?|clips?|melod(?:y|ies)"
    r"|chords?|notes?|piano|guitar|violin|drums|flute|instruments?|pieces?|album|playlist"
    r"|podcast|records?)\b",
    r"compose\s+(?:(?:a|an|the|some)\s+)?"
    + _mods(2)
    + r"(?:melod(?:y|ies)|tunes?|piece\s+of\s+music|music|symphon(?:y|ies)|score|soundtrack"
    r"|beat|instrumental|theme\s+tune|ringtone|concerto|sonata|fugue|waltz|string\s+quartet"
    r"|piano\s+piece)\b",
)
_PEOPLE = (
    r"(?:mother|mom|mum|dad|father|parents?|brother|sister|friends?|boss|manager|doctor"
    r"|dentist|plumber|landlord|neighbou?rs?|clients?|customers?|restaurant|hotel|office|bank"
    r"|police|fire\s+department|ambulance|airline|school|teachers?|colleagues?|co-?workers?"
    r"|team|family|wife|husband|partner|grandmother|grandma|grandfather|grandpa|aunt|uncle"
    r"|cousin|son|daughter|kids|children|company|store|shop|pharmacy|vet|mechanic|insurer"
    r"|insurance\s+company|customer\s+service|support|help\s?desk|someone|anyone|everyone"
    r"|him|her|them|me|us|911|999|112|professor|coach|tutor|employees|staff|hr|sales\s+team"
    r"|recruiter|interviewer|travel\s+agent|realtor|lawyer|accountant|babysitter|girlfriend"
    r"|boyfriend|roommate|(?-i:[A-Z][a-z]+))"
)
_WHO = r"(?:(?:my|your|our|the|his|her|their|all\s+(?:the\s+|my\s+)?)\s*)?(?:[\w-]+\s+)?"
_OPEN_VERBS = _alt(
    r"open(?![\w-])\s+(?:(?:the|this|that|my|your|a|an|our)\s+)?"
    + _mods(2)
    + r"(?:files?|attachments?|documents?|pdfs?|links?|urls?|websites?|web\s?pages?|apps?"
    r"|applications?|browser|emails?|folders?|spreadsheets?|programs?|door|windows?|box"
    r"|jar|bottle|terminal|(?:bank\s+|savings\s+|checking\s+)?account|tabs?|settings|camera"
    r"|fridge|package|parcel|gift|envelope|present|inbox)\b",
    r"(?:check|read|open|search|go\s+through|sort|organi[sz]e|clean\s+up|delete|clear"
    r"|summari[sz]e|review|access|update|back\s+up|sync|declutter|archive|rename|move|tidy"
    r"|look\s+at|scan|log\s?in(?:to)?|sign\s+in(?:to)?|use)\b[^.?!]{0,40}?\b(?:my|our)\s+"
    r"(?:[\w-]+\s+)?(?:inbox|e-?mails?|mail|messages|texts|voicemails?|calendar|contacts"
    r"|bank\s+account|account|balance|website|site|blog|server|phone|computer|router|modem"
    r"|printer|tv|smart\s+[\w-]+|thermostat|wi-?fi"
    r"|laptop|desktop|downloads|documents|files|folders?|drive|hard\s+drive|photos|pictures"
    r"|music|playlist|closet|garage|notifications|browser\s+history|dms)\b",
    r"(?:upload|download|install|uninstall|reinstall|reboot|restart|click|tap|attach|launch)"
    r"(?![\w-])|open\s+(?-i:[A-Z])[\w-]+",
    r"(?:create|make|add|set\s+up|follow|like|subscribe|unsubscribe|block|unblock|update"
    r"|change|delete|remove|save|publish|post|share|stream|play|order|buy|cancel|renew)\b"
    r"[^.?!]{0,50}?\b(?:on|to|from|in)\s+(?:spotify|netflix|youtube|instagram|facebook"
    r"|twitter|linkedin|tiktok|amazon|ebay|my\s+(?:phone|computer|laptop|account|calendar"
    r"|profile|feed|channel|page))\b",
    r"(?:fill\s+(?:out|in)|complete|submit|register|sign\s+up|log\s?in|sign\s+in)\b"
    r"[^.?!]{0,60}\b(?:online|websites?|site|portal|web\s?pages?)\b",
    r"print\s+(?:out\s+)?(?:(?:the|this|my|a|an|your|it|these|two|three|\d+)\s+)?"
    + _mods(2)
    + r"(?:copy|copies|documents?|pages?|files?|photos?|pictures?|tickets?|boarding\s+pass"
    r"|receipts?|reports?|labels?|invoices?|forms?|posters?|flyers?|cards?|it|them|out)\b",
    r"scan\s+(?:(?:the|this|my|a|these|your)\s+)?(?:[\w-]+\s+)?(?:documents?|qr\s+codes?"
    r"|barcodes?|receipts?|photos?|images?|pages?|passport|id|room|area|network)\b",
)
_WEB_VERBS = _alt(
    r"browse|surf\s+(?:the\s+)?(?:web|internet|net)",
    r"google\s+(?:the|for|it|this|that|what|how|who|where|when|\w+\s+\w+)",
    r"(?:search|find|look\s+up|check|get|fetch|retrieve|pull|gather|collect|compile|research"
    r"|locate)\b[^.?!]{0,80}?\b(?:online|on\s+the\s+(?:internet|web)|from\s+the\s+(?:internet"
    r"|web)|on\s+(?:google|wikipedia|amazon|youtube|twitter|reddit|ebay|etsy|craigslist|zillow"
    r"|tripadvisor|yelp|expedia|instagram|facebook|linkedin|tiktok)|the\s+web|the\s+internet"
    r"|(?:google|bing|youtube)(?!\s+(?:sheets|docs|slides|drive|maps|forms|analytics|ads"
    r"|cloud|photos|calendar))|latest\s+news|news\s+sites|social\s+media)\b",
    r"visit(?![\w-])|navigate\s+to|browse\s+to",
    r"check\s+(?:the\s+)?(?:latest\s+|current\s+|today's\s+|local\s+)?(?:news|weather"
    r"(?:\s+forecast)?|traffic|scores?|stock\s+(?:price|market)|exchange\s+rate|headlines)\b",
    r"go\s+(?:to|onto|on)\s+(?:the\s+|a\s+|this\s+)?(?:[\w-]+\s+)?(?:website|site|page|url|link"
    r"|web\s?page)",
)
_WORLD_VERBS = _alt(
    r"(?:call|phone|ring|fax|contact|call\s+up)\s+" + _WHO + _PEOPLE + r"(?![\w-])",
    r"(?:text|e-?mail|message|dm|sms|whatsapp)\s+" + _WHO + _PEOPLE + r"(?![\w-])",
    r"(?:tell|ask|invite|inform|notify|warn|thank|congratulate)\s+(?:my|our)\s+(?:[\w-]+\s+)?"
    + _PEOPLE,
    # "Send me a list of ideas" asks for text; any other "send" is an act.
    r"send(?![\w-])(?!\s+(?:me|us)\b)",
    r"send\s+(?:me|us)\s+(?:(?:a|an|the|some)\s+)?(?:e-?mails?|texts?|sms|packages?|parcels?"
    r"|gifts?|money|payments?|flowers|files?|photos?|pictures?|links?|fax|postcards?)\b",
    r"(?:forward|reply\s+to|respond\s+to|answer)\s+(?:(?:this|that|the|it|my|our)\s+)?"
    r"(?:[\w-]+\s+)?(?:e-?mails?|messages?|texts?|voicemails?|dms?|calls?)\b[^.?!]{0,40}?"
    r"\b(?:to|from)\s+(?:my|our|the)\b|(?:reply\s+to|respond\s+to|answer)\s+(?:my|our)\s+"
    r"(?:[\w'\u2019-]+\s+){0,2}(?:e-?mails?|messages?|texts?|voicemails?|dms?|calls?|phone)\b",
    r"share\s+(?:your|my)\s+screen\b",
    r"mail\s+(?:this|the|it|a|an|my|these|them|your|out)\b",
    r"post\s+(?:this|it|that|the|my|a|an|our|these|them)\b[^.?!]{0,60}\b(?:on|to)\s+"
    r"(?:(?:our|my|the|your)\s+)?(?:[\w'\u2019-]+\s+)?(?:social\s+media|facebook|twitter|x"
    r"|instagram|linkedin|reddit|tiktok|blog|website|forum|page|feed|channel|account)\b",
    r"tweet\s+(?:this|it|that|out|about)\b",
    r"share\s+(?:this|it|the|my|our|these)\b[^.?!]{0,60}\b(?:on|with)\s+(?:social\s+media"
    r"|facebook|twitter|instagram|linkedin|my|our|your\s+followers)\b",
    r"go\s+(?:to|outside|out|home|shopping|grocery\s+shopping|for\s+a\s+(?:walk|run|drive"
    r"|swim|jog|hike|ride)|buy|get|check|see|visit|and|downstairs|upstairs|back\s+to\s+the)\b",
    r"(?:travel|fly|head|hike|swim|walk|run|drive|jog|bike|cycle)\s+(?:over\s+)?to\b",
    r"drive\s+(?:me|us|home|over|across|around|my|your|the\s+car|a\s+car|the\s+kids)\b",
    r"walk\s+(?:the|my|your)\s+(?:dog|kids|children)\b|walk\s+(?:home|around|across"
    r"|\d+\s+(?:miles|km|kilometers|steps|minutes))\b",
    r"run\s+(?:a\s+(?:mile|marathon|\d+k|race|lap|errand)|errands|\d+\s+(?:miles|km|laps)"
    r"|around\s+the|the\s+(?:dishwasher|washing\s+machine|vacuum|bath))\b",
    r"fly\s+a\s+(?:kite|plane|drone)\b|climb\s+(?:a|the)\s+(?:mountain|tree|hill|stairs)\b",
    r"meet\s+(?:me|him|her|them|my|your|with|the)\b[^.?!]{0,40}\b(?:at|in|outside|tomorrow"
    r"|today|tonight|on)\b",
    r"attend\s+(?:a|an|the|my|this|tomorrow's|next|\w+'s)\b",
    r"bring\s+(?:me|us|him|her|them)\b|(?:fetch|grab|hand)\s+(?:me|us)\b",
    r"let\s+(?:the|my|your)\s+(?:dogs?|cats?|kids|children|guests|plumber|visitors?|pets?)"
    r"\s+(?:out|in)\b",
    r"pick\s+up\s+(?:my|the|your|some|a|an)\b(?!\s+(?:thread|conversation|story|pieces))",
    r"drop\s+off|deliver\s+(?:this|the|my|these|it|them|a\s+package|a\s+parcel)\b",
    r"(?:buy|purchase)(?![\w-])(?!\s+(?:vs\.?|versus|or)\b)",
    r"order\s+(?:me\s+|us\s+)?(?:(?:a|an|some|two|three|\d+)\s+)?(?!(?:list|sequence|set"
    r"|series)\b)(?:[\w-]+\s+){0,2}(?:pizzas?|food|takeout|takeaway|dinner|lunch|breakfast"
    r"|groceries|flowers|tickets?|taxi|uber|cab|coffee|drinks?|meal|sushi|burgers?|delivery"
    r"|copy|online|book|gift|supplies)\b",
    r"pay(?![\w-])(?!\s+(?:attention|tribute|homage|respects|a\s+compliment|close|heed"
    r"|it\s+forward|off))",
    r"book\s+(?:me\s+|us\s+)?(?:a|an|the|my|two|three|\d+|tickets?|flights?|rooms?|seats?"
    r"|tables?)\b",
    r"(?:reserve|rent|hire|lease)\s+(?:me\s+|us\s+)?(?:a|an|the|two|three|\d+|tickets?|some"
    r"|seats?|rooms?)\b",
    r"(?:donate|withdraw|deposit|transfer|wire)\s+(?:\$|€|£|\d|money|funds|cash|my|the|some"
    r"|a)\S*",
    r"cook(?![\w-])(?!\s+up)|bake(?![\w-])|brew\s+(?:a|some|the|me|us)\b",
    r"boil\s+(?:some\s+|the\s+|an?\s+)?(?:water|eggs?|pasta|kettle)\b",
    r"make\s+(?:me|us)?\s*(?:(?:a|an|some|the|two|three)\s+)?(?:[\w-]+\s+)?(?:cup\s+of|pot"
    r"\s+of|coffee|tea|sandwich(?:es)?|cake|pizza|dinner|lunch|breakfast|meal|omelet(?:te)?"
    r"|cookies|bread|salad|smoothie|cocktail|drink|bed|the\s+bed|appointment|reservation"
    r"|booking|phone\s+call|call|payment|purchase|donation|withdrawal|deposit)\b"
    r"(?!\s+(?:recipes?|ideas?|menu|lists?|plans?))",
    r"(?:clean|tidy|vacuum|mop|dust)\s+(?:up\s+)?(?:(?:the|my|your|this|our)\s+)?"
    r"(?:[\w-]+\s+)?(?:room|house|kitchen|bathroom|car|dishes|garage|windows?|floors?|desk"
    r"|fridge|oven|yard|table|apartment|office|bedroom|carpet|stairs)\b",
    r"wash\s+(?:(?:the|my|your)\s+)?(?:dishes|car|clothes|laundry|windows|hands|dog|floors?"
    r"|hair|face)\b",
    r"(?:mow|iron)\s+(?:the|my|your)\b",
    r"water\s+(?:(?:the|my|your)\s+)?(?:plants|garden|lawn|flowers|tomatoes|grass|trees)\b",
    r"feed\s+(?:the|my|your|our)\s+(?!data|models?|networks?|algorithms?|inputs?|outputs?"
    r"|results?|text|information)",
    r"give\s+(?:the|my|your|our)\s+(?:baby|babies|dogs?|cats?|kids|children|plants|pets?"
    r"|horses?)\s+(?:a|an|some|their|its|his|her)\s+(?:[\w-]+\s+)?(?:bath|walk|food|water"
    r"|medicine|treat|haircut|massage|meal|bottle|dinner|breakfast|lunch)\b",
    r"(?:sign|enrol+|register)\s+(?:me|us)\s+(?:up\s+)?(?:for|to|with|in|at|on)\b",
    r"plant\s+(?:(?:a|an|some|the|\d+)\s+)?(?:[\w-]+\s+)?(?:trees?|seeds|flowers|garden"
    r"|bulbs|tomatoes|vegetables|herbs|shrubs?)\b",
    r"(?:fix|repair|assemble)\s+(?:(?:my|the|your|this|a)\s+)?(?:[\w-]+\s+)?(?:car|bike"
    r"|bicycle|sink|faucet|tap|roof|fence|door|window|phone|laptop|computer|tv|washing"
    r"\s+machine|dishwasher|furniture|desk|bookshelf|chair|bed|toilet|printer|router)\b",
    r"(?:turn|switch|power)\s+(?:on|off)\b|(?:turn|switch|power)\s+(?:the|my|your|all"
    r"(?:\s+the)?)\s+(?:[\w-]+\s+){1,2}(?:on|off)\b|(?:turn|crank)\s+(?:up|down)\s+the\s+"
    r"(?:volume|heat|heating|music|thermostat|temperature|lights?|ac|air\s+conditioning)\b",
    r"(?:close|shut|lock|unlock)\s+(?:(?:the|my|your|this|all)\s+)?(?:[\w-]+\s+)?(?:door|doors"
    r"|windows?|tabs?|app|browser|garage|gate|car|laptop|computer|safe)\b",
    r"set\s+(?:(?:an?|the|my)\s+)?(?:alarm|timer|reminder|thermostat|table|up\s+(?:a|an|my)\s+"
    r"(?:meeting|call|appointment))\b",
    r"(?:remind|wake|notify|alert|ping)\s+me\b(?!\s+(?:what|how|of|who|about\s+the\s+"
    r"(?:rules|meaning|difference)))",
    r"schedule\s+(?:(?:a|an|the|my|our)\s+)?(?:[\w-]+\s+)?(?:meetings?|appointments?|calls?"
    r"|sessions?|interviews?|visits?|deliver(?:y|ies)|pickups?)\b",
    r"add\b[^.?!]{0,40}\bto\s+(?:my|our)\s+(?:calendar|cart|shopping\s+cart|basket|playlist"
    r"|contacts|schedule)\b",
    r"take\s+(?:me\s+)?(?:(?:a|an|the|some|my|your|two|three)\s+)?(?:[\w-]+\s+)?"
    r"(?:photos?|pictures?|pics?|photographs?|screenshots?|selfies?|snapshots?|videos?"
    r"|recordings?)\b|take\s+(?:the\s+dog|out\s+the\s+(?:trash|garbage|bins?)|the\s+trash"
    r"\s+out)\b|take\s+(?:(?:the|a|my|your)\s+)?(?:[\w-]+\s+)?(?:bus|train|subway|taxi|cab"
    r"|metro|tram|ferry|plane|flight|elevator|lift|car|bike|dog|kids|children)\s+(?:to|for"
    r"|home|out|into|back)\b",
    r"measure\s+(?:(?:the|your|my)\s+)?(?:temperature|height|weight|size|blood\s+pressure"
    r"|heart\s+rate|pulse|room|waist)\b",
    r"(?:taste|smell)\s+(?:the|this|these|that)\b",
    r"watch\s+(?!out\b|over\b|for\b|your\s+(?:language|tone|step|back|mouth|weight|words))"
    r"(?:the|this|a|an|these|those|that|my|your|some|any|it|them|me|tv|television|\d+|[\w-]+"
    r"\s+(?:movies?|films?|videos?|documentar(?:y|ies)|shows?|games?|match(?:es)?"
    r"|episodes?|clips?|trailers?|tutorials?|lectures?|talks?)\b)",
    r"listen(?:\s+(?:carefully|closely))?(?:\s+to)?\s+(?!(?:to\s+)?(?:your|yourself|me"
    r"|feedback|advice|others|people|customers|users|criticism|reason|(?:the\s+|your\s+)?"
    r"(?:heart|gut|body|instincts?))\b)",
    r"look\s+(?:at|closely\s+at)\s+(?:(?:the|this|these|that|those|your|my|a|an)\s+)?"
    + _mods(2)
    + r"(?:sky|stars|moon|sun|clouds|mirror|window|room|street|view|screen|monitor|calendar"
    r"|inbox|clock|watch|" + _SEEN + r")(?![\w-])|look\s+(?:outside|around(?:\s+you)?|out\s+"
    r"(?:of\s+)?(?:the|your|my)\s+window|up\s+at\s+the\s+sky)\b",
)
# Any other imperative whose clause names a household thing is a chore for a body: "Knock on
# the door", "Check the oven". Verbs that answer in text, and clause openers that are no
# imperative (question words, auxiliaries, determiners, pronouns), never start one.
_TEXT_VERBS = (
    r"(?:write|rewrite|describe|explain|list|give|tell|suggest|summari[sz]e|create|generate"
    r"|compose|draft|translate|classify|categori[sz]e|edit|proofread|correct|identify|compare"
    r"|contrast|name|provide|answer|calculate|compute|solve|convert|analy[sz]e|evaluate"
    r"|assess|recommend|make|design|plan|outline|brainstorm|predict|define|propose|rank|sort"
    r"|order|rate|choose|pick|select|decide|determine|estimate|paraphrase|argue|discuss"
    r"|debate|simulate|act|role-?play|respond|reply|come|develop|construct|build|formulate"
    r"|craft|prepare|produce|find|search|detect|extract|count|verify|validate|review"
    r"|critique|improve|revise|shorten|expand|simplify|elaborate|clarify|interpret"
    r"|illustrate|demonstrate|show|teach|help|guide|recall|remember|state|mention|note"
    r"|highlight|point|rephrase|reword|format|organi[sz]e|arrange|group|match|pair|fill"
    r"|complete|continue|finish|start|begin|use|apply|add|remove|delete|replace|insert"
    r"|change|modify|transform|turn|combine|merge|split|separate|break|reverse|output|return"
    r"|print|read|imagine|invent|devise|derive|prove|justify|support|defend|critici[sz]e"
    r"|praise|introduce|greet|ask|quiz|test|grade|score|mark|label|tag|annotate|cite|quote"
    r"|research|investigate|explore|examine|study|learn|practi[sc]e|conclude|infer|deduce"
    r"|reason|think|reflect|consider|speculate|guess|forecast|project|model|frame|phrase"
    r"|spell|conjugate|transcribe|encode|decode|encrypt|decrypt|parse|implement|code|program"
    r"|debug|fix|refactor|optimi[sz]e|run|execute|train|fit|sum|subtract|multiply|divide"
    r"|round|factor|integrate|differentiate|narrate|recount|retell|relate|express|convey"
    r"|pretend|assume|suppose|given|let|imagine|play|offer|share|draw|sketch|paint|map|plot"
    r"|chart|graph|visuali[sz]e|weigh|balance)"
)
_NOT_IMPERATIVE = (
    r"(?:what|why|how|when|where|who|whom|which|whose|is|are|was|were|do|does|did|can|could"
    r"|would|will|should|shall|may|might|must|have|has|had|the|a|an|this|that|these|those|my"
    r"|your|our|their|his|her|its|i|you|we|they|he|she|it|there|here|if|in|on|at|for|from"
    r"|with|by|as|to|of|and|or|but|so|after|before|while|since|because|although|assuming"
    r"|once|one|some|many|most|all|every|each|no|not|yes|dear|hi|hello|today|yesterday"
    r"|tomorrow|every|during|under|over|between|among|using|based|according|below|above)"
)
_HOUSEHOLD = (
    r"(?:doors?|doorbell|oven|stove|fridge|refrigerator|freezer|microwave|dishwasher|washing"
    r"\s+machine|dryer|kettle|toaster|sink|toilet|shower|bathtub|couch|sofa|furniture"
    r"|carpet|rug|lawn|garden|yard|plants|trash|garbage|bins?|mailbox|letterbox|car|tires"
    r"|tyres|garage|lights?|lamp|light\s+bulbs?|thermostat|heater|radiator|air\s+conditioner"
    r"|tv|television|remote|dog|puppy|cat|kitten|groceries|laundry|dishes|curtains|blinds"
    r"|walls?|shelf|shelves|floors?|stairs|kitchen|bathroom|bedroom|living\s+room|neighbou?r"
    r"|neighbou?r's|receptionist|cashier|waiter|waitress|mail\s?man|postman|windowsill"
    r"|windows?|bed|pillows?|keys|wallet|umbrella|coat|shoes|package|parcel|envelope|stamps?"
    r"|desk|chair|sofa|closet|wardrobe|fence|roof|driveway|sidewalk|porch|balcony|hallway"
    r"|attic|basement|plates?|glass\s+of|cup\s+of|mug|pan|pot|spoon|fork|knife|bottle"
    r"|phone|laptop|tablet|battery|charger|headphones|bike|bicycle)"
)
_CHORE = (
    rf"(?!{_TEXT_VERBS}(?![\w-])|{_NOT_IMPERATIVE}(?![\w-]))(?:[a-z]+(?<![^s]s)(?<![^e]ed)"
    r"|[a-z]+ss)"
    r"(?![\w'\u2019-])(?!\s+(?:is|are|was|were|has|have|had|can|could|will|would|should|may|might"
    r"|must|do|does|did|of)\b)[^.?!;:]{0,80}?\b(?:the|my|your|our|his|her|their|this|that"
    rf"|a|an|some|on|in|at|into|to)\s+(?:[\w'\u2019-]+\s+)?{_HOUSEHOLD}(?![\w-])"
)

_SUBJECT_FIRST = re.compile(_LEAD + _NOT_IMPERATIVE + r"(?![\w-])", re.IGNORECASE)
# One pattern per clause start, tried in this order; the group that matched names the need.
_ACTION_GROUPS = {
    "sound": (SOUND, _SOUND_VERBS),
    "open": (OPEN, _OPEN_VERBS),
    "web": (WEB, _WEB_VERBS),
    "world": (WORLD, _WORLD_VERBS),
    "chore": (WORLD, _CHORE),
}
_NEED_OF = {"draw": DRAW} | {group: need for group, (need, _) in _ACTION_GROUPS.items()}
_OTHER_ACTIONS = "|".join(f"(?P<{g}>{verbs})" for g, (_, verbs) in _ACTION_GROUPS.items())
_ACTION = re.compile(_LEAD + rf"(?:(?P<draw>{_DRAW_VERBS})|{_OTHER_ACTIONS})", re.IGNORECASE)
_SOUND_OR_VIDEO = re.compile(
    r"\b(?:video|audio|recordings?|podcast|melod(?:y|ies)|tunes?|soundtracks?|ringtones?"
    r"|music|symphon(?:y|ies)|instrumental|films?|movies?|documentar(?:y|ies)|vlogs?"
    r"|trailers?)\b",
    re.IGNORECASE,
)
# For a clause whose drawing verb is excused ("Draw a cat in ASCII art").
_ACTION_BUT_DRAW = re.compile(_LEAD + rf"(?:{_OTHER_ACTIONS})", re.IGNORECASE)
# A sentence end starts a clause; so does "and"/"then" unless a "how to"... came first.
_BOUNDARY = re.compile(
    r"(?P<end>[.!?;:]\s+|\n\s*)|,?\s+(?:and\s+then|and|then)\s+|,\s+then\s+", re.IGNORECASE
)
_MENTION_SCOPE = re.compile(
    r"\b(?:how|why|whether|if|when|where|which|who|that|what|ways?\s+to|steps?\s+to"
    r"|tips?\s+(?:for|on)|guide|tutorial|instructions|advice|process|reasons?|ideas?|before"
    r"|after|while|should|would|could|might|can\s+i|do\s+i)\b",
    re.IGNORECASE,
)


def _clause_starts(text: str) -> Iterator[int]:
    """Where an imperative may start: each sentence, and "and ..." after an imperative."""
    sentence = len(text) - len(text.lstrip())
    yield sentence
    # "I packed my bag and locked the door": "and" joins a subject's verbs, not commands.
    commands = _SUBJECT_FIRST.match(text, sentence) is None
    for m in _BOUNDARY.finditer(text):
        if m.group("end") is not None:
            sentence = m.end()
            commands = _SUBJECT_FIRST.match(text, sentence) is None
            yield m.end()
        elif commands and not _MENTION_SCOPE.search(text, sentence, m.start()):
            yield m.end()


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def non_text_need(instruction: str) -> tuple[str, str] | None:
    """``(what is needed, the words that show it)``, or ``None`` for a text-only task."""
    text = instruction
    m = _ATTACHED.search(text)
    if m:
        # "I've attached a photo": what was attached follows the match.
        what = text[m.start() : m.end() + 40]
        need = HEAR if _HEARD_RE.search(what) else SEE if _SEEN_RE.search(what) else OPEN
        return need, _quote(m.group(0))
    if ("/" in text or "www." in text.lower()) and _URL_VERB.search(text):
        url = _URL.search(text)
        if url:
            return WEB, _quote(url.group(0))
    if _names_a_medium(text.lower()):
        found = _pointed_at(text)
        if found:
            return found
    m = _PERCEIVE.search(text) or _SURROUNDINGS.search(text) or _WEBSITE_USE.search(text)
    if m:
        need = {_PERCEIVE: SEE, _SURROUNDINGS: WORLD}.get(m.re, WEB)
        return need, _quote(m.group(0))
    for start in _clause_starts(text):
        m = _ACTION.match(text, start)
        if m and m.lastgroup == "draw" and _drawing_excused(text, m.start("draw")):
            m = _ACTION_BUT_DRAW.match(text, start)
        if m and m.lastgroup:
            act = m.group(m.lastgroup)
            if m.lastgroup == "draw" and _SOUND_OR_VIDEO.search(act):
                return SOUND, _quote(act)  # "Compose a melody", "Make a short film"
            return _NEED_OF[m.lastgroup], _quote(act)
    return None


def _pointed_at(text: str) -> tuple[str, str] | None:
    code_task: bool | None = None
    for pattern in (_POINTING, _THE_MEDIA):
        for m in pattern.finditer(text):
            if _FIGURATIVE_MEDIA.search(text, max(m.start() - 40, 0), m.end() + 60):
                continue
            noun = next((v for k, v in m.groupdict().items() if k.startswith("noun") and v), m[0])
            heard = _HEARD_RE.fullmatch(noun) is not None
            if code_task is None:
                code_task = _CODE_TASK.search(text) is not None
            if code_task and not heard:
                continue  # "Write code that finds faces in the image": the answer is code
            if _DOC_NOUN.fullmatch(noun):
                return OPEN, _quote(m.group(0))
            if _WEB_NOUN.fullmatch(noun):
                return WEB, _quote(m.group(0))
            return (HEAR if heard else SEE), _quote(m.group(0))
    return None


def _drawing_excused(text: str, start: int) -> bool:
    """A picture asked for in text form (code, ASCII art, words), or a figure of speech."""
    return bool(_TEXT_FORM.search(text) or _FIGURATIVE_MEDIA.search(text, start))


class NonTextModality(BaseFilter):
    """Rejects tasks that need seeing, hearing, drawing, files, the web or the physical world.

    The module docstring states the rule: pointing at a picture or asking for one is
    rejected, mentioning one is not.
    """

    name = "non_text_modality"
    order = 21

    def check(self, instruction: str) -> Rejection | None:
        found = non_text_need(instruction)
        if found is None:
            return None
        need, words = found
        return Rejection(f"needs {need}: {words}")


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(NonTextModality)
