"""Analyses the paper leaves open: covariance bootstrap, linguistic filtering, cross-domain SE."""
