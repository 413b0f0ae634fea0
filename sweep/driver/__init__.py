"""Driving a sweep: the stages of run_sweep, the routers of the one Tuner, the recorder of rows, faults, manifests."""
