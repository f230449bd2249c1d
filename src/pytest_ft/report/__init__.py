"""From case results to the report: aggregation, gates, statistics, prices, baselines, rendering."""
