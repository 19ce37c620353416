"""Batch files: many assets described in one TOML, JSON or YAML file, turned into jobs.

``source`` parses the text and maps every key back to its line for error messages, ``schema``
says which tables and keys a batch file may hold, and ``batchfile`` names the assets, loads a
file and plans each asset's job with the cost estimate of the whole batch. The Blender side
(``blender/batch_runner``) runs what it plans.
"""
