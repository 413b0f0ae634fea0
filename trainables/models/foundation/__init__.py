"""Named foundation models as backbones: each a registry entry (catalog.py) built by the
library its card uses (load_timm.py, load_transformers.py, load_open_clip.py; each imported
only when an entry needs it), with its card's embedding recipe (recipes.py)."""
