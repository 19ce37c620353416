"""Actions on the selected objects, in three steps: `analysis` (what the selection is and which
actions it can take), `jobs` (an action as jobs for the engine) and `apply` (how the results land
on the scene)."""
