"""Sessions and provenance: what each ``selfinstruct run`` on a run directory was made from.

Each call records a session in the checkpoint (configuration without secrets, the seed
file's path and sha256, the endpoints' model, api and base URL, or the local model file).
A resume whose seeds (by content), model(s) or API(s) differ from those of the run's first
session that produced anything is refused before any request, unless
``run.allow_mixed`` (``--allow-mixed``) says to add to the run anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ..checkpoint.run_files import CONFIG
from ..checkpoint.store import Store
from ..client.transport import display_url
from ..config import Config
from ..errors import ConfigError, SelfInstructError
from ..seeds import resolve_seeds

log = logging.getLogger("selfinstruct_async")


def public_config(config: Config) -> dict[str, Any]:
    """``config.to_dict()`` as written to ``config.json`` and the sessions table."""
    data = config.to_dict()
    for endpoint in data.get("endpoints", []):
        # Credentials (and a query, which may hold a key) never reach the run directory.
        endpoint["base_url"] = display_url(endpoint.get("base_url", ""))
    return data


def _local_model_name(model_path: str) -> str:
    if model_path:
        return Path(model_path).name
    from ..client.local import default_model_path

    try:
        return default_model_path().name
    except ConfigError:
        return "(default model, not installed)"


def provenance(config: dict[str, Any], seeds_file: Path | None) -> dict[str, Any]:
    """What a session's tasks come from, from its :func:`public_config`."""
    digest = None
    if seeds_file is not None:
        with contextlib.suppress(OSError):
            digest = hashlib.sha256(seeds_file.read_bytes()).hexdigest()
    endpoints = [e for e in config.get("endpoints", []) if e.get("base_url")]
    found: dict[str, Any] = {
        "seeds": str(seeds_file) if seeds_file is not None else None,
        "seeds_resolved": str(seeds_file.resolve()) if seeds_file is not None else None,
        "seeds_sha256": digest,
        "endpoints": [
            {"model": e.get("model", ""), "api": e.get("api", ""), "base_url": e["base_url"]}
            for e in endpoints
        ],
    }
    if not endpoints:
        local = config.get("local", {})
        api = local.get("api", "completions")
        if config.get("endpoints") and api == "completions":
            api = config["endpoints"][0].get("api", api)
        found["local"] = {"model_file": _local_model_name(local.get("model_path", "")), "api": api}
    return found


def _models(found: dict[str, Any]) -> list[str]:
    if found.get("endpoints"):
        return sorted({f"model '{e['model']}'" for e in found["endpoints"]})
    return [f"the embedded model {found.get('local', {}).get('model_file', '?')}"]


def _apis(found: dict[str, Any]) -> list[str]:
    if found.get("endpoints"):
        return sorted({str(e["api"]) for e in found["endpoints"]})
    return [str(found.get("local", {}).get("api", "completions"))]


def _seeds_text(found: dict[str, Any]) -> str:
    digest = found.get("seeds_sha256")
    return f"seeds {found.get('seeds')} (sha256 {digest[:8] if digest else 'unknown'})"


def describe_provenance(found: dict[str, Any]) -> str:
    """``model 'a' (api completions) and seeds FILE (sha256 1234abcd)``."""
    return f"{', '.join(_models(found))} (api {', '.join(_apis(found))}) and {_seeds_text(found)}"


def provenance_differences(first: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What ``current`` asks for that differs from ``first``: models, APIs, seed content."""
    differences = []
    if _models(first) != _models(current):
        differences.append(", ".join(_models(current)))
    if _apis(first) != _apis(current):
        differences.append(f"api {', '.join(_apis(current))}")
    if first.get("seeds_sha256") and first["seeds_sha256"] != current.get("seeds_sha256"):
        differences.append(_seeds_text(current))
    return differences


def _reference_session(sessions: list[dict[str, Any]], progress: int) -> dict[str, Any] | None:
    """The first session that added anything: one that failed at once made nothing to mix."""
    for i, session in enumerate(sessions):
        after = sessions[i + 1]["progress_before"] if i + 1 < len(sessions) else progress
        if after > session["progress_before"]:
            return session
    return None


def _recover_first_session(store: Store, run_dir: Path) -> None:
    """A run from before sessions were recorded: its ``config.json`` says what made it."""
    path = run_dir / CONFIG
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        started = path.stat().st_mtime
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    seeds = old.get("run", {}).get("seeds", "")
    try:
        seeds_file: Path | None = resolve_seeds(seeds if isinstance(seeds, str) else "")
    except SelfInstructError:
        seeds_file = None
    found = {**provenance(old, seeds_file), "recorded_from": CONFIG}
    store.add_session(old, found, from_start=True, started=started)


def begin_session(store: Store, config: Config, seeds_file: Path) -> None:
    """Refuse a resume that would mix datasets (unless allowed); record this session."""
    run_dir = Path(config.run.out)
    settings = public_config(config)
    current = provenance(settings, seeds_file)
    progress = store.progress_mark()
    if progress and not store.sessions():
        _recover_first_session(store, run_dir)
    first = _reference_session(store.sessions(), progress)
    differences = provenance_differences(first["provenance"], current) if first else []
    if differences:
        was = describe_provenance(first["provenance"]) if first else ""
        asks = " and ".join(differences)
        if not config.run.allow_mixed:
            raise ConfigError(
                f"{run_dir} was generated with {was}; this session asks for {asks}; "
                "pass --allow-mixed to add to it anyway, or use another --out"
            )
        log.warning("%s was generated with %s; adding tasks made with %s", run_dir, was, asks)
    store.add_session(settings, current)
