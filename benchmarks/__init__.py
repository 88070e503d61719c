"""Developer benchmarks and diagnostics: scripts that print tables (docs/ cites their figures);
not installed with the package."""
