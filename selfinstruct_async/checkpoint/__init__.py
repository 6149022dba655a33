"""The run directory: the SQLite checkpoint, tasks.jsonl and the files that belong to a run.

``store`` (the :class:`~.store.Store` the pipeline writes through), ``opening`` (the run
directory's lock, the connection, open errors), ``deferred_writes`` (writes waiting for the
next commit, the ledger's keys), ``task_rows`` (reading tasks back), ``schema`` (tables,
version, upgrade), ``tasks_file`` (the one owner of the ``tasks.jsonl`` line: format,
reading, repair), ``sessions_table`` (provenance of each ``selfinstruct run``),
``batches_table`` (batch mode's requests and batches) and ``run_files`` (the names of a
run's files). Nothing here imports from ``outputs``.
"""
