"""The run directory: the SQLite checkpoint, tasks.jsonl and the files that belong to a run."""
