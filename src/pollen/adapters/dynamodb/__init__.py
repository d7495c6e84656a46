"""DynamoDB adapter: clients, error translation, table administration and the store layer."""
