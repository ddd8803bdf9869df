"""The Feast feature repository: feature_store.yaml (+ a cluster variant) and the definitions."""
