"""Following the log: the processing runner, its lanes and the processors they feed."""
