"""Running diffusers I2V pipelines: one module per model family, a stage clock, loading."""
