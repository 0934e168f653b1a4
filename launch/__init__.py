"""Experiment engine and launcher: configs, submitit, training/evaluation loop, run comparison."""
