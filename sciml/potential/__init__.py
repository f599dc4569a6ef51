"""Glue between the TDN potential (models/tdn_potential.py) and sciml: training task, data, statistics, metrics."""
