"""Before a sweep: planning checks, the pre-flight against data and weights, cost estimates, data and weight checks."""
