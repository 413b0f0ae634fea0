"""What runs inside a trial or an extraction: models, data, caches, training. Imported by every
process of a sweep (the driver, Ray's workers), so the one process-wide fix lives here."""

from trainables.astlock import serialize_ast_parse

serialize_ast_parse()
