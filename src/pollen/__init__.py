"""pollen: market data from Alpaca and Alpha Vantage into DynamoDB, mirrored into a search index."""

__version__ = "0.1.0"
