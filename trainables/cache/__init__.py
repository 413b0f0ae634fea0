"""The embedding cache: each (dataset, backbone, view) extracted once, memory-mapped by trials."""
