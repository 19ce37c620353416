"""The Tripo protocol itself: what a request, a task and an error are.

One module a concern, each importing only those listed before it (``inputs`` names the request
models for type checking only):
  errors          Tripo's HTTP statuses and error codes as exceptions with a readable message
  vocabulary      the task types and their labels, model versions and the defaults we send, option
                  values, limits and the rules between generation options (each defined once)
  records         what Tripo answers with: task status, outputs, the task record, usage rows
  inputs          what an input value is (task id, file token, URL, local file); local file checks
  request_models  one request model per task type, validating a request before any credit is
                  spent, and the factory (``build_request``)
  chains          which task's output each task accepts

Nothing here talks to the network or imports anything else of ``core``.
"""
