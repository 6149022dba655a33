"""The run directory: the SQLite checkpoint, tasks.jsonl and the files that belong to a run.

``store`` (the :class:`~.store.Store` the pipeline writes through), ``schema`` (tables,
version, upgrade), ``tasks_file`` (the one owner of the ``tasks.jsonl`` line: format,
reading, repair), ``sessions_table`` (provenance of each ``selfinstruct run``) and
``run_files`` (the names of a run's files). Nothing here imports from ``outputs``.
"""
