"""MSKF convection surrogate: training task, offline inference, evaluation and export."""
