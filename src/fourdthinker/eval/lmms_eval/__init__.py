"""lmms-eval integration: a task (YAML + ``utils.py``) for the synthetic benchmark and a model
wrapper (``model.FourDThinkerLMM``) that runs our latent-recurrent decoder inside lmms-eval.

Neither needs lmms-eval to be importable; see ``export.py`` to write a ready task folder.
"""
