"""The LangGraph agent: observe → settle → screen → analyse → decide → risk → execute → record."""
