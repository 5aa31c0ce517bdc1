"""The data pipeline: datasets fetched and checked, training data collected through providers."""
