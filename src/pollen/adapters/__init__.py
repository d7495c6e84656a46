"""Adapters: the only code that talks to DynamoDB, Alpaca, Alpha Vantage and the search index."""
