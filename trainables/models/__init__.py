"""Models: backbones and their weight files, the heads trials train, the mode registry."""
