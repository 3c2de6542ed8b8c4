"""Pure domain code: the pack format, versions, dependency resolution, archives, YAML,
runtimes and the registry index format. Imports nothing from services, adapters or AWS."""
