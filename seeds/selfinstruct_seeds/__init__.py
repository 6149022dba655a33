"""The default seed task sets, shipped inside the wheel and read with importlib.resources.

The files are data, not code: ``seed_tasks.jsonl`` (175 English tasks, the default pool)
and ``zh/seed_tasks.jsonl`` (Simplified Chinese). ``seeds/README.md`` describes them.
"""
