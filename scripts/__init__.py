"""Development scripts (demo, benchmarks, the sample-data generator); not shipped in the plugin zip."""
