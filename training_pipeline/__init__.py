"""The training pipeline: one module per step (prep, features, ...), assembled into a KFP pipeline."""
