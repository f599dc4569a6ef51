"""Atomistic potentials: the energy-model contract (``base``), forces and stress of any energy model (``forces``) and
the building blocks of the TDN network (``interaction``, ``radial``, ``readout``)."""
