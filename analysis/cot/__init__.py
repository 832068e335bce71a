"""Chapter 4: chain-of-thought prompting on ScienceQA (flip analysis, early-answering probe).

Modules: ``prompts`` (prompt building), ``generate`` (batched cached generation and letter
scoring), ``extract`` (answer extraction), ``scoring`` (flip table, McNemar, bootstrap),
``compute`` (the experiment), ``figures`` and ``chapter`` (what the chapter shows).
"""
