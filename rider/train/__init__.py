"""Training one (dataset, model variant, seed): data on the device, AdamW, best-validation-MAE checkpoint."""
