"""DynamoDB Streams mirrored into the search index: record decoding, versioning, the poller and backfill."""
