"""The Tripo protocol itself: what a request, a task and an error are.

``tasks`` holds every task type with its option values and defaults (each defined once), the
request models that validate a request before any credit is spent, the task records Tripo answers
with and the checks on local input files; ``chains`` holds the chain rules (which task's output
each task accepts). ``errors`` maps Tripo's HTTP statuses and error codes to exceptions with a readable message.
Nothing here talks to the network or imports anything else of ``core``.
"""
