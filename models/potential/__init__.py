"""Building blocks of the TDN interatomic potential (models/tdn_potential.py)."""
