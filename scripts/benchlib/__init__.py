"""scripts/bench's modules: common (runs, checks, ratios), profiling, noisy."""
