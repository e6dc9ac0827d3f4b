"""tradegraph: a LangGraph agent that paper-trades crypto with a self-hosted LLM.

Data flows one way: market → context → LLM → decision → risk → broker → ledger.
"""

__version__ = "0.1.0"
