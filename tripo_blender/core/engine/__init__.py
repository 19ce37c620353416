"""The job engine: jobs as chains of steps, run by one worker thread.

``jobs`` holds ``Job``/``Step`` and the ``JobEngine`` that creates, polls and downloads; ``journal``
writes every job to disk the moment anything is known, and ``ownership`` decides, through lock
files, which process may run a job. ``recipes`` builds the common jobs, and ``history`` lists every
task this machine knows from the journals and the sidecars beside downloaded files.
"""
