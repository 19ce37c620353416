"""Batch files: many assets described in one TOML, JSON or YAML file, turned into jobs.

``batchfile`` reads a batch file, keeping a map back to its lines for error messages, validates it
against the schema and plans each asset's job with the cost estimate of the whole batch. The
Blender side (``blender/batch_runner``) runs what it plans.
"""
