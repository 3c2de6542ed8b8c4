"""Stage services: the business logic of each stage, given adapters and settings."""
