"""The HTTP API (API Gateway REST, Lambda proxy), built on powertools' resolver."""
