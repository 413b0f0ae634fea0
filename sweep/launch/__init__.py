"""Launchers: what brings a Ray cluster up and runs `sweep run` on it (SLURM here; cluster.yaml for `ray up`)."""
