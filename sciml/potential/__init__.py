"""Interatomic potentials in sciml: the training task (``task: potential``, any registered energy model), model
inputs, statistics, metrics, evaluation (``sciml eval``) and relaxation (``sciml relax``)."""
