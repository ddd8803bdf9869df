"""The stream scorer: a Faust worker that scores every transaction and publishes the score."""
