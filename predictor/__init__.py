"""The KServe predictor: `FraudModel` (predictor.model) served by `python -m predictor` (predictor.server)."""
