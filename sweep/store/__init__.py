"""The results store: rows written and read, checked, queried and formatted."""
