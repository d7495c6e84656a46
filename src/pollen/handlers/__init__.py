"""AWS Lambda entry points, one module per function; each exposes ``handler(event, context)``."""
