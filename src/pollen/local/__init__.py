"""Local stand-ins: moto's DynamoDB server, the upstream simulator, the embedded stack that runs them."""
