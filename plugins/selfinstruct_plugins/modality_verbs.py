"""The ``non_text_modality`` filter's verbs: imperatives that ask for a picture, a sound or an act.

They count only at the start of a clause; the clause boundaries and the words that make
an "and ..." a mention rather than a request are here too. :mod:`selfinstruct_plugins.modality`
holds the rule that uses them.
"""

from __future__ import annotations

import re

from .modality_nouns import _HEAD_END, _SEEN, DRAW, OPEN, SOUND, WEB, WORLD, _alt, _mods

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
# Every match of _BOUNDARY holds one of these: a text where this finds nothing is a single
# clause, and the scan for boundaries (most of the cost of finding clauses) is skipped.
# Keep the two in step.
_MAY_BOUNDARY = re.compile(r"[.!?;:]\s|\n|\s(?:and|then)\s", re.IGNORECASE)
_MENTION_SCOPE = re.compile(
    r"\b(?:how|why|whether|if|when|where|which|who|that|what|ways?\s+to|steps?\s+to"
    r"|tips?\s+(?:for|on)|guide|tutorial|instructions|advice|process|reasons?|ideas?|before"
    r"|after|while|should|would|could|might|can\s+i|do\s+i)\b",
    re.IGNORECASE,
)
