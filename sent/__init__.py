"""SENT toolkit: semantic-entropy curricula and token-entropy KL for RL on LLM reasoning.

Reproduces and stress-tests "Efficient Reinforcement Learning with Semantic and Token Entropy for
LLM Reasoning" (arXiv 2512.04359). See README.md and docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
