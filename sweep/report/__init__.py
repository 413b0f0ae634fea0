"""Reports: the paper's tables beside its numbers, statistics, plots, Kaggle scores."""
