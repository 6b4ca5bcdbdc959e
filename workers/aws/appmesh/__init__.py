"""App Mesh backend: route weights between virtual nodes (retired by AWS, for existing meshes)."""
