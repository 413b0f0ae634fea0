"""Data: the public layouts read into images and labels, subsets and folds, transforms, content fingerprints."""
