"""One training engine for every model family (potentials, the MSKF surrogate, ...).

A model family plugs in as a :class:`~sciml.training.task.Task` registered in :data:`~sciml.training.task.TASKS`.
"""
