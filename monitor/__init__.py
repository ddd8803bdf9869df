"""Live model quality and drift: score events joined with late labels, windowed metrics, the retraining trigger.

`quality` and `trigger` are pure (no Kafka), so their figures can be checked
against scikit-learn offline; the Kafka side reads the two topics and feeds them.
"""
